//! Dealing the training rows out to devices.
//!
//! The unit dealt is a flow when the data has flows (its records' endpoints), else a row: a
//! real device sees whole connections, never every other packet of one, and a windowed
//! model's window (the record and the ones before it in its flow) then lies on the device
//! that holds the record. A flow's class, for label skew, is its most frequent one.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// How training data is dealt to devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartitionKind {
    /// Units shuffled and dealt round-robin: every device sees every class in proportion.
    Iid,
    /// Label skew: each class's units are split over the devices in proportions drawn from
    /// Dirichlet(α) (Hsu et al. 2019); small α gives each device few classes.
    Dirichlet,
    /// Label skew as `dirichlet`, each class's units dealt in time order (first row in the
    /// table) rather than shuffled: device d gets one contiguous stretch of each class's
    /// traffic, of the size its Dirichlet(α) share says. A capture point sees consecutive
    /// connections, not every n-th one, so the time between packets of the same two hosts
    /// (`host.iat_us`) on a device's own table is what the hosts' traffic had, instead of
    /// thinned n-fold as a shuffled deal leaves it.
    #[serde(rename = "dirichlet-time")]
    DirichletTime,
    /// Quantity skew: device sizes drawn from Dirichlet(α), classes mixed as in `iid`.
    Quantity,
    /// All traffic of a source host (the host that opened the flow) on one device: the
    /// natural IoT partition. Hosts are dealt largest first to the device with the fewest
    /// rows so far.
    Host,
}

spelled!(PartitionKind, "partition", {
    Iid => "iid",
    Dirichlet => "dirichlet",
    DirichletTime => "dirichlet-time",
    Quantity => "quantity",
    Host => "host",
});

/// What a partition works from: the training rows and, per row of the table, class, flow
/// and source host.
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    /// The rows to deal (the training split).
    pub rows: &'a [usize],
    /// Class of every row of the table.
    pub labels: &'a [u32],
    /// Number of classes.
    pub classes: usize,
    /// Flow id of every row of the table, if the data has flows.
    pub flows: Option<&'a [u32]>,
    /// Id of the host that opened each row's flow, if the data has hosts.
    pub hosts: Option<&'a [u32]>,
}

/// Rows per device.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    /// Each device's rows of the table, in table order (file order: a flow's windows need it).
    pub devices: Vec<Vec<usize>>,
    /// `devices × classes` row counts.
    pub class_counts: Vec<Vec<u64>>,
    /// What was dealt: "flows" or "rows".
    pub unit: &'static str,
    /// How many units there were.
    pub units: usize,
}

impl Partition {
    /// Recounts `class_counts` from `labels` (every row's class, `classes` of them): after
    /// the table's classes were renumbered (`Dataset::reorder_classes`), the same rows.
    pub fn recount(&mut self, labels: &[u32], classes: usize) {
        self.class_counts = self
            .devices
            .iter()
            .map(|rows| {
                let mut c = vec![0u64; classes];
                for &r in rows {
                    c[labels[r] as usize] += 1;
                }
                c
            })
            .collect();
    }
}

/// Deals `data.rows` to `devices` devices.
///
/// # Errors
///
/// [`Error::Config`] for no devices, α ≤ 0 where it is used, fewer units than devices for
/// `iid`, or `host` on data without hosts or with fewer hosts than devices.
pub fn partition(
    data: Rows<'_>,
    kind: PartitionKind,
    devices: usize,
    alpha: f64,
    seed: u64,
) -> crate::Result<Partition> {
    if devices == 0 {
        return Err(Error::config("devices", 0, "at least 1"));
    }
    if matches!(
        kind,
        PartitionKind::Dirichlet | PartitionKind::DirichletTime | PartitionKind::Quantity
    ) && !(alpha > 0.0 && alpha.is_finite())
    {
        return Err(Error::config("alpha", alpha, "a positive number"));
    }
    let (units, unit) = match data.flows {
        Some(flows) => (group_units(data.rows, flows), "flows"),
        None => (data.rows.iter().map(|&r| vec![r]).collect(), "rows"),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x005e_ed0f_f1ed);
    let mut owner = vec![usize::MAX; units.len()];
    match kind {
        PartitionKind::Iid => {
            if units.len() < devices {
                return Err(Error::config(
                    "devices",
                    devices,
                    format!("at most the {} {unit} of the training split", units.len()),
                ));
            }
            let mut order: Vec<usize> = (0..units.len()).collect();
            order.shuffle(&mut rng);
            for (i, u) in order.into_iter().enumerate() {
                owner[u] = i % devices;
            }
        }
        PartitionKind::Quantity => {
            let shares = dirichlet(&mut rng, alpha, devices)?;
            let mut order: Vec<usize> = (0..units.len()).collect();
            order.shuffle(&mut rng);
            deal_by_shares(&order, &units, &shares, &mut owner);
        }
        PartitionKind::Dirichlet | PartitionKind::DirichletTime => {
            let class_of: Vec<u32> = units
                .iter()
                .map(|u| majority(u, data.labels, data.classes))
                .collect();
            // Units are in order of their first row, which is time order in a capture.
            let in_time_order = kind == PartitionKind::DirichletTime;
            for c in 0..data.classes as u32 {
                let mut of_class: Vec<usize> =
                    (0..units.len()).filter(|&u| class_of[u] == c).collect();
                if of_class.is_empty() {
                    continue;
                }
                // The time-ordered deal draws what the shuffled one draws, so for one seed
                // both give each device the same shares and differ only in which units.
                let mut shuffled = of_class.clone();
                shuffled.shuffle(&mut rng);
                if !in_time_order {
                    of_class = shuffled;
                }
                let shares = dirichlet(&mut rng, alpha, devices)?;
                deal_by_shares(&of_class, &units, &shares, &mut owner);
            }
        }
        PartitionKind::Host => {
            let Some(hosts) = data.hosts else {
                return Err(Error::config(
                    "partition",
                    "host",
                    "iid, dirichlet or quantity: this file has no host columns",
                ));
            };
            let mut by_host: Vec<(u32, usize, Vec<usize>)> = Vec::new();
            let mut index = std::collections::HashMap::new();
            for (u, rows) in units.iter().enumerate() {
                let h = hosts[rows[0]];
                let at = *index.entry(h).or_insert_with(|| {
                    by_host.push((h, 0, Vec::new()));
                    by_host.len() - 1
                });
                by_host[at].1 += rows.len();
                by_host[at].2.push(u);
            }
            if by_host.len() < devices {
                return Err(Error::config(
                    "devices",
                    devices,
                    format!(
                        "at most the {} source hosts of the training split for a host partition",
                        by_host.len()
                    ),
                ));
            }
            // Largest host first, to the emptiest device (ties: lowest device).
            by_host.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let mut load = vec![0usize; devices];
            for (_, size, us) in by_host {
                let d = (0..devices).min_by_key(|&d| (load[d], d)).unwrap_or(0);
                load[d] += size;
                for u in us {
                    owner[u] = d;
                }
            }
        }
    }
    let mut rows_of = vec![Vec::new(); devices];
    for (u, rows) in units.iter().enumerate() {
        rows_of[owner[u]].extend_from_slice(rows);
    }
    let mut class_counts = vec![vec![0u64; data.classes]; devices];
    for (d, rows) in rows_of.iter_mut().enumerate() {
        rows.sort_unstable();
        for &r in rows.iter() {
            class_counts[d][data.labels[r] as usize] += 1;
        }
    }
    Ok(Partition {
        devices: rows_of,
        class_counts,
        unit,
        units: units.len(),
    })
}

/// One draw of Dirichlet(α, …, α) over `k` parts (normalised Gamma(α, 1) draws).
fn dirichlet(rng: &mut ChaCha8Rng, alpha: f64, k: usize) -> crate::Result<Vec<f64>> {
    let gamma =
        Gamma::new(alpha, 1.0).map_err(|_| Error::config("alpha", alpha, "a positive number"))?;
    let draws: Vec<f64> = (0..k).map(|_| gamma.sample(rng)).collect();
    let total: f64 = draws.iter().sum();
    Ok(if total > 0.0 {
        draws.iter().map(|d| d / total).collect()
    } else {
        // Every draw underflowed (tiny α): all of it to one part, as the limit α → 0 does.
        let mut v = vec![0.0; k];
        v[rng.random_range(0..k)] = 1.0;
        v
    })
}

/// Deals `order`'s units so device `d` gets about `shares[d]` of their rows: a unit goes to
/// the device whose cumulative share its middle row falls in.
fn deal_by_shares(order: &[usize], units: &[Vec<usize>], shares: &[f64], owner: &mut [usize]) {
    let total: usize = order.iter().map(|&u| units[u].len()).sum();
    let mut bounds = Vec::with_capacity(shares.len());
    let mut acc = 0.0;
    for s in shares {
        acc += s;
        bounds.push(acc * total as f64);
    }
    let mut seen = 0usize;
    for &u in order {
        let mid = seen as f64 + units[u].len() as f64 / 2.0;
        let d = bounds
            .iter()
            .position(|&b| mid < b)
            .unwrap_or(shares.len() - 1);
        owner[u] = d;
        seen += units[u].len();
    }
}

fn majority(rows: &[usize], labels: &[u32], classes: usize) -> u32 {
    let mut counts = vec![0usize; classes];
    for &r in rows {
        counts[labels[r] as usize] += 1;
    }
    (0..classes)
        .max_by_key(|&c| (counts[c], std::cmp::Reverse(c)))
        .unwrap_or(0) as u32
}

/// The rows of each flow, flows in order of first appearance, rows in table order.
fn group_units(rows: &[usize], flows: &[u32]) -> Vec<Vec<usize>> {
    let mut index = std::collections::HashMap::new();
    let mut units: Vec<Vec<usize>> = Vec::new();
    for &r in rows {
        let at = *index.entry(flows[r]).or_insert_with(|| {
            units.push(Vec::new());
            units.len() - 1
        });
        units[at].push(r);
    }
    units
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 400 rows, 4 classes; flows of 4 rows each, one class per flow; 10 hosts.
    fn table() -> (Vec<usize>, Vec<u32>, Vec<u32>, Vec<u32>) {
        let rows: Vec<usize> = (0..400).collect();
        let flows: Vec<u32> = (0..400).map(|r| r / 4).collect();
        let labels: Vec<u32> = flows.iter().map(|f| f % 4).collect();
        let hosts: Vec<u32> = flows.iter().map(|f| f % 10).collect();
        (rows, labels, flows, hosts)
    }

    fn rows_of<'a>(
        rows: &'a [usize],
        labels: &'a [u32],
        flows: &'a [u32],
        hosts: Option<&'a [u32]>,
    ) -> Rows<'a> {
        Rows {
            rows,
            labels,
            classes: 4,
            flows: Some(flows),
            hosts,
        }
    }

    fn check_whole(p: &Partition, rows: &[usize], flows: &[u32]) {
        let mut all: Vec<usize> = p.devices.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, rows, "every row dealt exactly once");
        for d in &p.devices {
            assert!(d.windows(2).all(|w| w[0] < w[1]), "table order");
            for &r in d {
                // All of a flow's rows on the device that has one of them.
                assert!(
                    rows.iter()
                        .filter(|&&x| flows[x] == flows[r])
                        .all(|x| d.contains(x))
                );
            }
        }
    }

    #[test]
    fn every_kind_deals_every_row_once_keeping_flows_whole() {
        let (rows, labels, flows, hosts) = table();
        let data = rows_of(&rows, &labels, &flows, Some(&hosts));
        for &kind in PartitionKind::ALL {
            let p = partition(data, kind, 5, 0.3, 7).unwrap();
            assert_eq!(p.devices.len(), 5);
            assert_eq!((p.unit, p.units), ("flows", 100));
            check_whole(&p, &rows, &flows);
            let counted: u64 = p.class_counts.iter().flatten().sum();
            assert_eq!(counted, 400);
            // Same seed, same partition.
            assert_eq!(partition(data, kind, 5, 0.3, 7).unwrap(), p, "{kind}");
        }
    }

    #[test]
    fn dirichlet_time_deals_each_device_a_stretch_of_each_class() {
        let (rows, labels, flows, hosts) = table();
        let data = rows_of(&rows, &labels, &flows, Some(&hosts));
        let timed = partition(data, PartitionKind::DirichletTime, 4, 0.5, 3).unwrap();
        let shuffled = partition(data, PartitionKind::Dirichlet, 4, 0.5, 3).unwrap();
        // Between the first and last flow of a class a device holds, it holds every flow of
        // that class: one stretch. The shuffled deal leaves gaps.
        let stretches = |p: &Partition| -> usize {
            let mut gaps = 0;
            for d in &p.devices {
                for c in 0..4u32 {
                    let mine: Vec<u32> = d
                        .iter()
                        .filter(|&&r| labels[r] == c)
                        .map(|&r| flows[r])
                        .collect();
                    let (Some(&lo), Some(&hi)) = (mine.first(), mine.last()) else {
                        continue;
                    };
                    let all = (lo..=hi).filter(|f| f % 4 == c).count();
                    let held: std::collections::BTreeSet<u32> = mine.into_iter().collect();
                    gaps += all - held.len();
                }
            }
            gaps
        };
        assert_eq!(stretches(&timed), 0);
        assert!(stretches(&shuffled) > 0);
        // Every row dealt once, label skew as the shuffled deal's (the same shares).
        let mut all: Vec<usize> = timed.devices.concat();
        all.sort_unstable();
        assert_eq!(all, rows);
        assert_eq!(timed.class_counts, shuffled.class_counts);
        assert_eq!(
            "dirichlet-time".parse::<PartitionKind>().unwrap(),
            PartitionKind::DirichletTime
        );
        assert!(partition(data, PartitionKind::DirichletTime, 4, 0.0, 3).is_err());
    }

    #[test]
    fn iid_is_balanced_and_dirichlet_is_skewed() {
        let (rows, labels, flows, hosts) = table();
        let data = rows_of(&rows, &labels, &flows, Some(&hosts));
        let iid = partition(data, PartitionKind::Iid, 4, 0.0, 1).unwrap();
        for d in &iid.devices {
            assert_eq!(d.len(), 100);
        }
        // Host: 10 hosts of 40 rows on 4 devices, largest-first greedy: 3, 3, 2, 2 hosts.
        let host = partition(data, PartitionKind::Host, 4, 0.0, 1).unwrap();
        let mut sizes: Vec<usize> = host.devices.iter().map(Vec::len).collect();
        sizes.sort_unstable();
        assert_eq!(sizes, vec![80, 80, 120, 120]);
        for d in &host.devices {
            let hs: std::collections::BTreeSet<u32> = d.iter().map(|&r| hosts[r]).collect();
            assert!(hs.len() == 2 || hs.len() == 3);
        }
        // Dirichlet(0.1): most devices hold few classes; the mean number of classes a device
        // holds (over seeds) is well under iid's 4.
        let mut classes_held = 0usize;
        for seed in 0..10 {
            let p = partition(data, PartitionKind::Dirichlet, 4, 0.1, seed).unwrap();
            classes_held += p
                .class_counts
                .iter()
                .map(|c| c.iter().filter(|&&n| n > 0).count())
                .sum::<usize>();
        }
        let mean = classes_held as f64 / 40.0;
        assert!(mean < 2.5, "{mean}");
    }

    #[test]
    fn bad_settings_are_errors_naming_the_setting() {
        let (rows, labels, flows, _) = table();
        let data = rows_of(&rows, &labels, &flows, None);
        let e = partition(data, PartitionKind::Host, 4, 0.0, 1).unwrap_err();
        assert!(e.to_string().contains("no host columns"), "{e}");
        let e = partition(data, PartitionKind::Iid, 101, 0.0, 1).unwrap_err();
        assert!(e.to_string().contains("100 flows"), "{e}");
        assert!(partition(data, PartitionKind::Dirichlet, 4, 0.0, 1).is_err());
        assert!(partition(data, PartitionKind::Iid, 0, 0.0, 1).is_err());
        // Without flows the unit is a row.
        let rows_only = Rows {
            flows: None,
            ..data
        };
        let p = partition(rows_only, PartitionKind::Iid, 8, 0.0, 1).unwrap();
        assert_eq!((p.unit, p.units), ("rows", 400));
    }
}
