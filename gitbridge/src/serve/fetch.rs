//! Answering a fetch in both protocol versions: acknowledgments (v2 `acknowledgments` section, v0
//! `multi_ack_detailed`), shallow information, then the pack, streamed. Everything that can be
//! refused is decided in [`prepare`] before the first byte goes out; [`stream`] only writes.

use std::collections::HashSet;
use std::sync::Arc;

use aether_core::objects::Objects;
use gix::ObjectId;

use super::ServeError;
use super::out::Out;
use super::pack::{Deltas, write_pack};
use super::request::FetchArgs;
use super::walk::{Plan, SessionGraph};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V0,
    V2,
}

/// A fetch answer, decided: what to acknowledge and the pack to send (if any).
pub struct Prepared {
    version: Version,
    args: FetchArgs,
    common: Vec<ObjectId>,
    /// `None`: negotiation continues, no pack in this round.
    plan: Option<Plan>,
}

impl Prepared {
    pub fn args(&self) -> &FetchArgs {
        &self.args
    }
}

/// Whether this round ends with a pack.
fn sends_pack(version: Version, args: &FetchArgs, common: &[ObjectId]) -> bool {
    // "ready" once something is common: the pack may then hold a little more than a full
    // negotiation would find, never less.
    let ready = !common.is_empty();
    match version {
        Version::V2 => args.done || ready,
        Version::V0 => !args.ended_early && (args.done || (args.no_done && args.multi_ack_detailed && ready)),
    }
}

/// Negotiate and plan the pack; fails (before any output) on wants outside the session.
pub fn prepare(
    objects: &Objects,
    tips: &[ObjectId],
    version: Version,
    args: FetchArgs,
) -> Result<Prepared, ServeError> {
    let mut graph = SessionGraph::new(objects, tips)?;
    let common = graph.common(&args.haves);
    let plan = if sends_pack(version, &args, &common) || (version == Version::V0 && args.deepens()) {
        Some(graph.plan(&args, &common)?)
    } else {
        None
    };
    Ok(Prepared {
        version,
        args,
        common,
        plan,
    })
}

/// Write the answer. Errors after the start are reported to the client in band 3.
pub fn stream(objects: &Arc<Objects>, prepared: Prepared, out: &mut Out) {
    let result = match prepared.version {
        Version::V2 => stream_v2(objects, prepared, out),
        Version::V0 => stream_v0(objects, prepared, out),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "upload-pack failed while streaming");
        out.fatal(&format!("aetherfs: {e}"));
    }
}

fn stream_v2(objects: &Arc<Objects>, p: Prepared, out: &mut Out) -> Result<(), ServeError> {
    let args = &p.args;
    let plan = match p.plan {
        Some(plan) if sends_pack(Version::V2, args, &p.common) => Some(plan),
        _ => None,
    };
    if !args.done {
        out.line("acknowledgments")?;
        if p.common.is_empty() {
            out.line("NAK")?;
        }
        for c in &p.common {
            out.line(&format!("ACK {c}"))?;
        }
        if plan.is_none() {
            out.flush_pkt()?;
            return Ok(());
        }
        out.line("ready")?;
        out.delim_pkt()?;
    }
    let Some(plan) = plan else {
        return Ok(());
    };
    if args.deepens() || !plan.shallow.is_empty() || !plan.unshallow.is_empty() {
        out.line("shallow-info")?;
        for s in &plan.shallow {
            out.line(&format!("shallow {s}"))?;
        }
        for s in &plan.unshallow {
            out.line(&format!("unshallow {s}"))?;
        }
        out.delim_pkt()?;
    }
    out.line("packfile")?;
    send_pack(objects, &plan, args.deltas(), out)?;
    out.flush_pkt()?;
    Ok(())
}

fn stream_v0(objects: &Arc<Objects>, p: Prepared, out: &mut Out) -> Result<(), ServeError> {
    let args = &p.args;
    if args.deepens()
        && let Some(plan) = &p.plan
    {
        for s in &plan.shallow {
            out.line(&format!("shallow {s}"))?;
        }
        for s in &plan.unshallow {
            out.line(&format!("unshallow {s}"))?;
        }
        out.flush_pkt()?;
    }
    let common: HashSet<ObjectId> = p.common.iter().copied().collect();
    let mut last = None;
    let mut sent_ready = false;
    let (mut got_common, mut got_other) = (false, false);
    for h in &args.haves {
        if common.contains(h) {
            got_common = true;
            last = Some(*h);
            if args.multi_ack_detailed {
                out.line(&format!("ACK {h} common"))?;
            }
        } else {
            got_other = true;
            if args.multi_ack_detailed && last.is_some() {
                out.line(&format!("ACK {h} ready"))?;
                sent_ready = true;
            }
        }
    }
    let send = if args.ended_early {
        false
    } else if args.done {
        match (last, p.common.first()) {
            (Some(l), _) if args.multi_ack_detailed => out.line(&format!("ACK {l}"))?,
            (_, Some(first)) => out.line(&format!("ACK {first}"))?,
            _ => out.line("NAK")?,
        }
        true
    } else {
        if let Some(l) = last
            && args.multi_ack_detailed
            && got_common
            && !got_other
        {
            out.line(&format!("ACK {l} ready"))?;
            sent_ready = true;
        }
        out.line("NAK")?;
        if let Some(l) = last
            && args.no_done
            && sent_ready
        {
            out.line(&format!("ACK {l}"))?;
            true
        } else {
            false
        }
    };
    if !send {
        return Ok(());
    }
    let plan = p
        .plan
        .ok_or_else(|| ServeError::Protocol("internal: no pack was planned".into()))?;
    send_pack(objects, &plan, args.deltas(), out)?;
    if args.side_band.is_some() {
        out.flush_pkt()?;
    }
    Ok(())
}

fn send_pack(objects: &Arc<Objects>, plan: &Plan, deltas: Deltas, out: &mut Out) -> Result<(), ServeError> {
    let total = plan.objects.len();
    out.progress(&format!("Enumerating objects: {total}, done.\n"))?;
    let stats = write_pack(objects, &plan.objects, &plan.bases, deltas, out, &mut |out, n| {
        out.progress(&format!(
            "Sending objects: {}% ({n}/{total})\r",
            n as usize * 100 / total.max(1)
        ))
    })?;
    out.progress(&format!(
        "Total {} (delta {}, reused {}, thin {}), {} bytes streamed from the chunk store\n",
        stats.objects, stats.deltas, stats.reused, stats.thin, stats.chunked_bytes
    ))?;
    tracing::debug!(
        objects = stats.objects,
        deltas = stats.deltas,
        chunked = stats.chunked_bytes,
        "pack sent"
    );
    Ok(())
}
