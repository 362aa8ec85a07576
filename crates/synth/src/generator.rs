//! The row loop: pick a flow, let it emit its next packet, label the row, spell it
//! out. The quirks that belong to the file rather than to a packet are added here:
//! rows repeated verbatim, rows with hex flags, the giant payload, and the class-name
//! variants.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::SynthOptions;
use crate::class::{Class, NCLASSES};
use crate::proto;
use crate::row::{Column, Field, Row};
use crate::traffic::{GenState, Pool};

/// Share of rows that repeat the previous row verbatim (real captures have these).
const DUPLICATE: f64 = 0.015;
/// Share of rows whose flags and checksums are written in hex (`0x0018`).
const HEX_ROWS: f64 = 0.30;
/// One row in about this many carries a `tcp.payload` of 200,000+ hex characters.
const GIANT_ONE_IN: u32 = 200_000;
/// From this many rows on, at least one giant payload is written.
const GIANT_MIN_ROWS: u64 = 50_000;
/// One row in this many pads its class name with spaces.
const PADDED_LABEL_ONE_IN: u32 = 1000;
/// Capture clock start, 22:49:20.400794 (the time of day of the example row).
const CLOCK_START_US: u64 = (22 * 3600 + 49 * 60 + 20) * 1_000_000 + 400_794;

#[derive(Debug)]
pub(crate) struct Generator {
    state: GenState,
    row: Row,
    pool: Pool,
    /// Rows still owed per class, and rows written per class.
    remaining: [u64; NCLASSES],
    counts: [u64; NCLASSES],
    clock_us: u64,
    /// The row last written (no line terminator), and its class.
    line: Vec<u8>,
    last_class: Option<Class>,
    rows: u64,
    /// Row index that gets the guaranteed giant payload (first TCP row from there on).
    giant_at: Option<u64>,
    giant_pending: bool,
    giant_written: bool,
}

impl Generator {
    /// A generator owing `quotas[class]` rows of each class (they sum to `opts.rows`).
    pub(crate) fn new(opts: &SynthOptions, quotas: [u64; NCLASSES]) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
        let giant_at = (opts.rows >= GIANT_MIN_ROWS)
            .then(|| rng.random_range(0..opts.rows.saturating_sub(opts.rows / 50).max(1)));
        let mut state = GenState {
            rng,
            next_stream: 0,
            frame: 0,
        };
        let pool = Pool::new(&quotas, &mut state);
        Generator {
            state,
            row: Row::new(),
            pool,
            remaining: quotas,
            counts: [0; NCLASSES],
            clock_us: CLOCK_START_US,
            line: Vec::with_capacity(16 << 10),
            last_class: None,
            rows: opts.rows,
            giant_at,
            giant_pending: false,
            giant_written: false,
        }
    }

    /// Rows written per class so far.
    pub(crate) fn counts(&self) -> &[u64; NCLASSES] {
        &self.counts
    }

    /// Row `index` (0-based, below `opts.rows`), without line terminator.
    pub(crate) fn next_line(&mut self, index: u64) -> &[u8] {
        let class = self.build_line(index);
        let i = class as usize;
        self.remaining[i] = self.remaining[i].saturating_sub(1);
        self.counts[i] += 1;
        self.last_class = Some(class);
        &self.line
    }

    /// Builds row `index` into `self.line` and returns its class.
    fn build_line(&mut self, index: u64) -> Class {
        self.state.frame = index + 1;
        if let Some(class) = self.last_class
            && self.remaining[class as usize] > 0
            && self.state.rng.random_bool(DUPLICATE)
        {
            return class; // `self.line` still holds the previous row: written again verbatim.
        }

        let flow = self.pool.next(&self.remaining, &mut self.state);
        self.clock_us += self.state.rng.random_range(1..=300);
        let hex = self.state.rng.random_bool(HEX_ROWS);
        self.row.reset(hex);
        self.row.set(Column::FrameTime, Field::Time(self.clock_us));
        proto::next_packet(&mut self.row, flow, &mut self.state);
        let class = flow.class;

        self.maybe_giant(index);
        self.label(class);
        self.line.clear();
        self.row
            .render(&mut self.line, class == Class::Normal, &mut self.state.rng);
        class
    }

    /// Rarely (and once for sure in big files) a 200,000+ character `tcp.payload`,
    /// on the first TCP row at or after the chosen index.
    fn maybe_giant(&mut self, index: u64) {
        if self.giant_at == Some(index) || self.state.rng.random_ratio(1, GIANT_ONE_IN) {
            self.giant_pending = true;
        }
        let last_chance = index + 1 == self.rows && self.giant_at.is_some() && !self.giant_written;
        if (self.giant_pending && self.row.is_tcp()) || last_chance {
            let len = self.state.rng.random_range(100_000..=125_000u32);
            let seed = self.state.rng.random();
            self.row.num(Column::TcpLen, len);
            self.row.payload(len, seed);
            self.giant_pending = false;
            self.giant_written = true;
        }
    }

    /// `Attack_label` and `Attack_type`, with the real file's spelling variants.
    fn label(&mut self, class: Class) {
        let row = &mut self.row;
        row.set(
            Column::AttackLabel,
            Field::Int(u64::from(class != Class::Normal)),
        );
        let name = if class == Class::Fingerprinting && self.state.rng.random_bool(0.5) {
            "OS_Fingerprinting"
        } else {
            class.name()
        };
        if self.state.rng.random_ratio(1, PADDED_LABEL_ONE_IN) {
            let (lead, trail) = match self.state.rng.random_range(0..3) {
                0 => (" ", ""),
                1 => ("", " "),
                _ => (" ", "  "),
            };
            row.text(Column::AttackType, |out| {
                out.extend_from_slice(lead.as_bytes());
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(trail.as_bytes());
            });
        } else {
            row.set(Column::AttackType, Field::Str(name));
        }
    }
}
