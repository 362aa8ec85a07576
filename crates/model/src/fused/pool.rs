//! Reuse of the large f32 buffers of the fused kernels.
//!
//! A training step of the default model at `T = 16` allocates megabytes of saved gates and
//! gradients and frees them a moment later. The system allocator hands blocks that large
//! back to the kernel and faults fresh zeroed pages in on the next step, which cost a
//! quarter of a step's time when measured. Smaller buffers (padded weights, per-chunk
//! scratch) churn the allocator's per-thread arenas, whose trimming unmaps pages across
//! threads: measured at half the speed of burn's inference after another workload had run.
//! Buffers taken here go back to a small free list when dropped instead.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

/// Smaller buffers are left to the allocator, which serves them from its own free lists.
const MIN_POOLED: usize = 4 * 1024;
/// Most buffers kept: enough for the buffers of one forward and backward pass per thread.
const MAX_FREE: usize = 64;

static FREE: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// A buffer of f32 that returns to the pool when dropped.
#[derive(Debug, Default)]
pub(crate) struct Buf(Vec<f32>);

impl Buf {
    /// `len` values of unspecified content (whatever an earlier user left): for buffers
    /// the caller overwrites in full.
    pub(crate) fn stale(len: usize) -> Self {
        if len < MIN_POOLED {
            return Self(vec![0.0; len]);
        }
        let reused = {
            let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
            // The smallest free buffer that is large enough.
            let best = free
                .iter()
                .enumerate()
                .filter(|(_, v)| v.capacity() >= len)
                .min_by_key(|(_, v)| v.capacity())
                .map(|(i, _)| i);
            best.map(|i| free.swap_remove(i))
        };
        match reused {
            Some(mut v) => {
                v.resize(len, 0.0);
                v.truncate(len);
                Self(v)
            }
            None => Self(vec![0.0; len]),
        }
    }

    /// `len` zeros.
    pub(crate) fn zeroed(len: usize) -> Self {
        let mut buf = Self::stale(len);
        buf.0.fill(0.0);
        buf
    }
}

impl Deref for Buf {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}

impl Clone for Buf {
    fn clone(&self) -> Self {
        let mut copy = Self::stale(self.len());
        copy.copy_from_slice(self);
        copy
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        if v.capacity() >= MIN_POOLED {
            let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
            if free.len() < MAX_FREE {
                free.push(v);
            } else if let Some(smallest) = free.iter_mut().min_by_key(|f| f.capacity())
                && smallest.capacity() < v.capacity()
            {
                // Full: keep the larger buffers, which are the expensive ones to fault in.
                *smallest = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_with_the_asked_length() {
        let mut a = Buf::zeroed(MIN_POOLED * 2);
        a.fill(3.0);
        drop(a);
        let b = Buf::stale(MIN_POOLED + 5);
        assert_eq!(b.len(), MIN_POOLED + 5);
        let c = Buf::zeroed(MIN_POOLED * 2);
        assert!(c.iter().all(|&v| v == 0.0));
        let small = Buf::stale(3);
        assert_eq!(&small[..], &[0.0; 3]);
    }
}
