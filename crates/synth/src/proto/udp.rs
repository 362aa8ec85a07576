//! Bare UDP: the DDoS UDP flood, packets microseconds apart on one stream.

use rand::Rng;

use crate::row::{Column, Field, Row};
use crate::traffic::{Flow, GenState};

pub(crate) fn flood(row: &mut Row, flow: &mut Flow, state: &mut GenState) {
    row.hosts(flow.client, flow.server);
    row.num(Column::UdpPort, flow.server_port);
    row.num(Column::UdpStream, flow.udp_stream);
    row.set(
        Column::UdpTimeDelta,
        Field::Micros(state.rng.random_range(1..=60)),
    );
}
