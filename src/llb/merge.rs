//! MergeOp: the union of several states, each kept as its own layer (BuildKit >= 0.10).

use bollard_buildkit_proto::pb;

use super::{Lines, Meta, Node, State};

/// Merges `states` in order (later ones win on conflicts). Scratch states are dropped; one
/// state is returned as is, none gives scratch. `location`: the lines of the user's file
/// the merge comes from.
pub fn merge(states: &[State], name: &str, location: Option<Lines>) -> State {
    let outputs: Vec<_> = states.iter().filter_map(|s| s.0.clone()).collect();
    match outputs.len() {
        0 => State::scratch(),
        1 => State(Some(outputs[0].clone())),
        n => {
            let inputs = (0..n as i64).map(|input| pb::MergeInput { input }).collect();
            let op = pb::Op { op: Some(pb::op::Op::Merge(pb::MergeOp { inputs })), ..Default::default() };
            let meta = Meta { name: Some(name.to_string()), location, ..Default::default() };
            State::from_node(Node { op, inputs: outputs, meta }, 0)
        }
    }
}
