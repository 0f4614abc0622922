//! The default synthesizer, deterministic and offline. It gathers the members' sentences into
//! claims (paraphrases and restatements are one claim), then lists what the members share as
//! patterns, and the best practices and gotchas among all claims, each stated once; a claim
//! only one member makes is attributed to it. It declines a cluster whose members hold no
//! practice or gotcha: the synthesis would only restate the consolidated memory.

use std::collections::BTreeSet;

use crate::domain::Memory;
use crate::engine::synthesis::cues::{Role, role};
use crate::engine::synthesis::{ClusterView, SynthesisDraft, SynthesisError, Synthesizer};
use crate::engine::text::units::{UnitKind, units};
use crate::engine::text::words::Content;

/// Two sentences make one claim when their values and content words overlap this much
/// (Jaccard), or when the smaller is contained in the larger this much.
const SAME_CLAIM_JACCARD: f64 = 0.45;
const SAME_CLAIM_CONTAINMENT: f64 = 0.75;
/// A sentence with fewer items than this says too little to be a claim.
const MIN_CLAIM_ITEMS: usize = 2;
const MAX_ITEMS_PER_LIST: usize = 5;
const SUMMARY_SENTENCES: usize = 2;
/// Units of one member a synthesis reads (a memory's gist is in its opening, not its 500th line).
const MAX_UNITS_PER_MEMBER: usize = 64;

struct Claim {
    text: String,
    content: Content,
    role: Role,
    members: BTreeSet<usize>,
}

fn same_claim(a: &Content, b: &Content) -> bool {
    // "Pin serde to 1.0.200" and "Pin serde to 1.0.201" disagree: different values, two claims.
    if a.missing_from(b).0 > 0 && b.missing_from(a).0 > 0 {
        return false;
    }
    let shared = a.shared_with(b) as f64;
    let smaller = a.len().min(b.len()).max(1) as f64;
    a.overlap(b) >= SAME_CLAIM_JACCARD || shared / smaller >= SAME_CLAIM_CONTAINMENT
}

fn claims(members: &[&Memory]) -> Vec<Claim> {
    let mut claims: Vec<Claim> = Vec::new();
    for (index, member) in members.iter().enumerate() {
        let texts = [Some(member.execution_summary.as_str()), member.result.as_deref(), member.feedback.as_deref()];
        // Bounded, since every unit is compared with every claim so far.
        for unit in texts.into_iter().flatten().flat_map(units).take(MAX_UNITS_PER_MEMBER) {
            // Titles and code blocks are material, not claims.
            if matches!(unit.kind, UnitKind::Line | UnitKind::Code) {
                continue;
            }
            let content = Content::of(&unit.text);
            if content.len() < MIN_CLAIM_ITEMS {
                continue;
            }
            let sentence_role = role(&unit.text);
            // An instruction and a description of the same things are different claims.
            let best = claims
                .iter_mut()
                .filter(|c| c.role == sentence_role && same_claim(&c.content, &content))
                .max_by(|a, b| a.content.overlap(&content).total_cmp(&b.content.overlap(&content)));
            match best {
                Some(claim) => {
                    claim.members.insert(index);
                }
                None => claims.push(Claim {
                    role: sentence_role,
                    text: unit.text,
                    content,
                    members: BTreeSet::from([index]),
                }),
            }
        }
    }
    claims
}

fn label(member: &Memory) -> String {
    member.task_id.clone().unwrap_or_else(|| member.id.simple().to_string()[..8].to_owned())
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractiveSynthesizer;

impl Synthesizer for ExtractiveSynthesizer {
    fn name(&self) -> &str {
        "extractive"
    }

    fn synthesize(&self, view: &ClusterView<'_>) -> Result<SynthesisDraft, SynthesisError> {
        let n = view.members.len();
        if n == 0 {
            return Err(SynthesisError::InvalidAnswer("cluster has no members".into()));
        }
        let mut all = claims(&view.members);
        // Most supported first; among equals, the order in which the members said them.
        all.sort_by_key(|c| std::cmp::Reverse(c.members.len()));
        let pick = |wanted: Role, shared_only: bool| -> Vec<&Claim> {
            all.iter()
                .filter(|c| c.role == wanted && (!shared_only || c.members.len() >= 2))
                .take(MAX_ITEMS_PER_LIST)
                .collect()
        };
        let patterns = pick(Role::Statement, true);
        let practices = pick(Role::Practice, false);
        let gotchas = pick(Role::Gotcha, false);
        if practices.is_empty() && gotchas.is_empty() {
            return Err(SynthesisError::NothingToAdd);
        }
        let selected: Vec<&Claim> = patterns.iter().chain(&practices).chain(&gotchas).copied().collect();
        let supported: BTreeSet<usize> = selected.iter().flat_map(|c| c.members.iter().copied()).collect();
        let coverage = supported.len() as f32 / n as f32;
        let agreement = selected.iter().map(|c| c.members.len() as f32 / n as f32).sum::<f32>() / selected.len() as f32;
        // Cohesion scales, never carries: a tight cluster whose members agree on little stays low.
        let confidence = (view.cluster.cohesion * (0.5 * coverage + 0.5 * agreement)).clamp(0.0, 1.0);

        let state = |c: &Claim| -> String {
            match c.members.iter().next() {
                Some(&only) if c.members.len() == 1 && n > 1 => {
                    let body = c.text.trim_end_matches(['.', '!', '?']);
                    format!("{body} (only in {}){}", label(view.members[only]), &c.text[body.len()..])
                }
                _ => c.text.clone(),
            }
        };
        let kind = view.cluster.memory_type.map_or("related", |t| t.as_str());
        let central: Vec<&str> = selected.iter().take(SUMMARY_SENTENCES).map(|c| c.text.as_str()).collect();
        Ok(SynthesisDraft {
            summary: format!("Synthesis of {n} {kind} memories: {}", central.join(" ")),
            patterns: patterns.iter().map(|c| state(c)).collect(),
            best_practices: practices.iter().map(|c| state(c)).collect(),
            gotchas: gotchas.iter().map(|c| state(c)).collect(),
            confidence,
        })
    }
}
