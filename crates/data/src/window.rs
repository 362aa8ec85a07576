//! Windows of packets of the same flow: the temporal context the seeds' GRU lacks.
//!
//! For `--window K`, row r's window is the K-1 rows before it *of the same flow*
//! (same endpoints and ports in either direction, see [`crate::table::Dataset::flows`]),
//! in file order, which is capture order, then r itself. Early packets of a flow
//! have fewer predecessors; their windows are left-padded with [`PAD`], and the
//! model masks those steps. The window's label is r's.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};

/// A padded (empty) position in a window.
pub const PAD: u32 = u32::MAX;

/// Row windows, row-major: `windows[r * k..(r + 1) * k]` ends with `r`.
///
/// With `k == 1` every row is its own window and `flows` may be `None`.
///
/// # Errors
/// `k == 0`, or `k > 1` on a table without flows (no endpoint columns).
pub fn flow_windows(flows: Option<&[u32]>, n: usize, k: usize) -> Result<Vec<u32>> {
    if k == 0 {
        return Err(Error::Config(
            "the window must hold at least one record (--window 1)".into(),
        ));
    }
    if k == 1 {
        return Ok((0..n as u32).collect());
    }
    let flows = flows.ok_or_else(|| {
        Error::Config(format!(
            "--window {k} needs flows, built from endpoint columns (addresses, ports); this file has none: use --window 1"
        ))
    })?;
    let mut recent: FxHashMap<u32, VecDeque<u32>> = FxHashMap::default();
    let mut out = vec![PAD; n * k];
    for (r, &f) in flows.iter().enumerate().take(n) {
        let q = recent.entry(f).or_default();
        let w = &mut out[r * k..(r + 1) * k];
        let start = k - 1 - q.len();
        for (slot, &prev) in w[start..k - 1].iter_mut().zip(q.iter()) {
            *slot = prev;
        }
        w[k - 1] = r as u32;
        q.push_back(r as u32);
        if q.len() > k - 1 {
            q.pop_front();
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_each_flow_in_file_order() {
        // Rows 0..6 in flows A B A A B A.
        let flows = [0, 1, 0, 0, 1, 0];
        let w = flow_windows(Some(&flows), 6, 3).unwrap();
        let row = |r: usize| &w[r * 3..r * 3 + 3];
        assert_eq!(row(0), &[PAD, PAD, 0]);
        assert_eq!(row(1), &[PAD, PAD, 1]);
        assert_eq!(row(2), &[PAD, 0, 2]);
        assert_eq!(row(3), &[0, 2, 3]);
        assert_eq!(row(4), &[PAD, 1, 4]);
        assert_eq!(
            row(5),
            &[2, 3, 5],
            "only the K-1 most recent rows of the flow"
        );
    }

    #[test]
    fn window_one_needs_no_flows_and_longer_ones_do() {
        assert_eq!(flow_windows(None, 3, 1).unwrap(), vec![0, 1, 2]);
        let e = flow_windows(None, 3, 4).unwrap_err();
        assert!(e.to_string().contains("--window 4 needs flows"), "{e}");
        assert!(flow_windows(Some(&[0]), 1, 0).is_err());
    }
}
