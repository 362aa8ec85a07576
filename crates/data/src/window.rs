//! Windows of packets of the same flow or host pair: the temporal context the seeds' GRU
//! lacks.
//!
//! For `--window K`, row r's window is the K-1 rows before it *of the same flow*
//! (same endpoints and ports in either direction, see [`crate::table::Dataset::flows`])
//! or *of the same two hosts* (any ports, [`crate::table::Dataset::host_pairs`]), as
//! [`WindowBy`] says, in file order, which is capture order, then r itself. Early packets
//! have fewer predecessors; their windows are left-padded with [`PAD`], and the model
//! masks those steps. The window's label is r's.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};

/// What a window follows: the packets before it of its flow, or of its two hosts.
///
/// A host pair's window reaches across connections: a connection's first packets (its
/// handshake, the same in every class) follow the host pair's previous connection, as
/// a detector watching the link sees them. Models saved before the choice existed
/// followed flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WindowBy {
    /// Same endpoints and ports, either direction.
    #[default]
    Flow,
    /// Same two hosts, either direction, any ports.
    HostPair,
}

impl WindowBy {
    /// The name the command line and `model.json` use.
    pub fn name(self) -> &'static str {
        match self {
            WindowBy::Flow => "flow",
            WindowBy::HostPair => "host-pair",
        }
    }
}

impl std::str::FromStr for WindowBy {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        [WindowBy::Flow, WindowBy::HostPair]
            .into_iter()
            .find(|by| by.name() == s)
            .ok_or_else(|| format!("`{s}` is not a window key; give flow or host-pair"))
    }
}

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
        return Err(Error::invalid(
            "window",
            0,
            "at least 1 (records per window)",
        ));
    }
    if k == 1 {
        return Ok((0..n as u32).collect());
    }
    let flows = flows.ok_or_else(|| {
        Error::invalid(
            "window",
            k,
            "1 for a file without flows (a longer window follows a flow, built from endpoint columns: addresses, ports)",
        )
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

/// Feature windows ready for a recurrent model: the feature matrix of every row
/// and each row's window of row indices.
#[derive(Debug, Clone)]
pub struct Sequences {
    /// Features of every row, row-major `rows x features`.
    pub features: crate::pipeline::Matrix,
    /// `windows[r * k..(r + 1) * k]`: see [`flow_windows`].
    pub windows: Vec<u32>,
    pub k: usize,
}

impl Sequences {
    /// Builds windows of `k` records over all rows of `features`.
    ///
    /// # Errors
    /// As [`flow_windows`].
    pub fn new(features: crate::pipeline::Matrix, flows: Option<&[u32]>, k: usize) -> Result<Self> {
        let windows = flow_windows(flows, features.rows, k)?;
        Ok(Sequences {
            features,
            windows,
            k,
        })
    }

    /// Whether the window ending at row `r` holds fewer than `k` records (a flow's first
    /// `k - 1` packets; windows are left-padded).
    pub fn is_partial(&self, r: usize) -> bool {
        self.windows[r * self.k] == PAD
    }

    /// Fills `x` (`[rows.len(), k, features]`, row-major) and `mask`
    /// (`[rows.len(), k]`, 1 for a real record, 0 for padding) for the windows
    /// ending at `rows`. Padding steps are zeros.
    pub fn batch(&self, rows: &[usize], x: &mut Vec<f32>, mask: &mut Vec<f32>) {
        let f = self.features.cols;
        x.clear();
        x.resize(rows.len() * self.k * f, 0.0);
        mask.clear();
        mask.resize(rows.len() * self.k, 0.0);
        for (b, &r) in rows.iter().enumerate() {
            for (t, &src) in self.windows[r * self.k..(r + 1) * self.k]
                .iter()
                .enumerate()
            {
                if src == PAD {
                    continue;
                }
                let dst = (b * self.k + t) * f;
                x[dst..dst + f].copy_from_slice(self.features.row(src as usize));
                mask[b * self.k + t] = 1.0;
            }
        }
    }
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
    fn batches_gather_features_and_mask_padding() {
        let features = crate::pipeline::Matrix {
            rows: 4,
            cols: 2,
            data: vec![0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5],
        };
        // Flows A A B A.
        let s = Sequences::new(features, Some(&[7, 7, 9, 7]), 3).unwrap();
        // Only row 3's window holds three records.
        let partial: Vec<bool> = (0..4).map(|r| s.is_partial(r)).collect();
        assert_eq!(partial, [true, true, true, false]);
        let (mut x, mut m) = (Vec::new(), Vec::new());
        s.batch(&[3, 2], &mut x, &mut m);
        // Row 3's window: rows 0, 1, 3. Row 2's: pad, pad, 2.
        assert_eq!(&x[..6], &[0.0, 0.5, 1.0, 1.5, 3.0, 3.5]);
        assert_eq!(&x[6..], &[0.0, 0.0, 0.0, 0.0, 2.0, 2.5]);
        assert_eq!(m, vec![1.0, 1.0, 1.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn window_one_needs_no_flows_and_longer_ones_do() {
        assert_eq!(flow_windows(None, 3, 1).unwrap(), vec![0, 1, 2]);
        let e = flow_windows(None, 3, 4).unwrap_err();
        assert!(
            matches!(&e, Error::Invalid { field: "window", value, .. } if value == "4"),
            "{e}"
        );
        assert!(e.to_string().contains("without flows"), "{e}");
        assert!(matches!(
            flow_windows(Some(&[0]), 1, 0),
            Err(Error::Invalid {
                field: "window",
                ..
            })
        ));
    }
}
