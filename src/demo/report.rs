//! The demo's before/after report: counts, each cluster's members beside the merged text,
//! syntheses, archived memories, promotions and what waits for review. Read from the job's
//! stored result (for a dry run, its plan) and the memories it names.

use std::{collections::HashMap, fmt};

use uuid::Uuid;

use super::DemoError;
use crate::domain::{Applied, ChangeOperation, Difference, PlanReport};
use crate::store::{changes, jobs, memories, playbook};

/// Characters of a memory's first line shown per member.
const FIRST_LINE_CHARS: usize = 110;
/// Archive rows read for the report; a demo project has far fewer.
const MAX_ARCHIVES: i64 = 10_000;

#[derive(Debug, Clone)]
pub struct Report {
    pub dry_run: bool,
    pub memories_before: Option<i32>,
    pub memories_after: Option<i32>,
    pub merges: Vec<MergeReport>,
    pub syntheses: Vec<SynthesisReport>,
    pub archived: Vec<String>,
    pub promoted: Vec<PromotionReport>,
    /// Near-identical memories the value guard held apart: possible updates, in the review queue.
    pub updates: Vec<UpdateReport>,
}

#[derive(Debug, Clone)]
pub struct UpdateReport {
    pub older: String,
    pub newer: String,
    /// The values that differ, older's then newer's.
    pub values: (String, String),
}

#[derive(Debug, Clone)]
pub struct MergeReport {
    pub merged_id: Uuid,
    pub merged_text: String,
    /// The first line of each member.
    pub members: Vec<String>,
    pub coverage: Option<f64>,
    pub compression: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct SynthesisReport {
    pub text: String,
    pub confidence: Option<f64>,
    pub needs_review: bool,
}

#[derive(Debug, Clone)]
pub struct PromotionReport {
    pub category: String,
    pub content: String,
}

/// A merge or synthesis as the report shows it: the created memory (its text when the plan holds
/// it), its sources and figures.
struct Created {
    memory_id: Uuid,
    text: Option<String>,
    sources: Vec<Uuid>,
    coverage: Option<f32>,
    compression: Option<f32>,
    confidence: Option<f32>,
    needs_review: bool,
}

impl Created {
    fn merge(memory_id: Uuid, text: Option<String>, sources: Vec<Uuid>, coverage: f32, compression: f32) -> Self {
        let (coverage, compression) = (Some(coverage), Some(compression));
        Created { memory_id, text, sources, coverage, compression, confidence: None, needs_review: false }
    }

    fn synthesis(memory_id: Uuid, text: Option<String>, confidence: f32, needs_review: bool) -> Self {
        let (sources, confidence) = (Vec::new(), Some(confidence));
        Created { memory_id, text, sources, coverage: None, compression: None, confidence, needs_review }
    }
}

/// A possible update: the older and newer memory and their differing values.
struct Update {
    older: Uuid,
    newer: Uuid,
    difference: Difference,
}

/// What the report reads of a job's result, whether it was applied or only planned.
struct Outcome {
    merges: Vec<Created>,
    syntheses: Vec<Created>,
    updates: Vec<Update>,
    archived: Vec<Uuid>,
    /// Planned promotions (a dry run), or the playbook entries the job wrote.
    promotions: Result<Vec<PromotionReport>, Vec<Uuid>>,
}

/// The parts of a bounded plan's entries (`PlanReport`) the report shows.
mod planned {
    use serde::Deserialize;
    use uuid::Uuid;

    use crate::domain::{Difference, SourceRef};

    #[derive(Deserialize)]
    pub struct Memory {
        pub id: Uuid,
        pub execution_summary: String,
    }

    #[derive(Deserialize)]
    pub struct Merge {
        pub memory: Memory,
        pub sources: Vec<SourceRef>,
        pub coverage: f32,
        pub compression: f32,
    }

    #[derive(Deserialize)]
    pub struct Synthesis {
        pub memory: Memory,
        pub confidence: f32,
        pub needs_review: bool,
    }

    #[derive(Deserialize)]
    pub struct Review {
        pub older: SourceRef,
        pub newer: SourceRef,
        pub difference: Difference,
    }

    #[derive(Deserialize)]
    pub struct Archive {
        pub memory_id: Uuid,
    }

    #[derive(Deserialize)]
    pub struct Promotion {
        pub category: String,
        pub content: String,
    }
}

fn decode<T: serde::de::DeserializeOwned>(entries: &[serde_json::Value]) -> Result<Vec<T>, DemoError> {
    entries
        .iter()
        .map(|entry| serde_json::from_value(entry.clone()).map_err(|error| DemoError::Result(error.to_string())))
        .collect()
}

impl Outcome {
    fn of_plan(plan: &PlanReport) -> Result<Self, DemoError> {
        let merges = decode::<planned::Merge>(&plan.merges)?
            .into_iter()
            .map(|merge| {
                let sources = merge.sources.iter().map(|source| source.id).collect();
                let text = Some(merge.memory.execution_summary);
                Created::merge(merge.memory.id, text, sources, merge.coverage, merge.compression)
            })
            .collect();
        let syntheses = decode::<planned::Synthesis>(&plan.syntheses)?
            .into_iter()
            .map(|synthesis| {
                let text = Some(synthesis.memory.execution_summary);
                Created::synthesis(synthesis.memory.id, text, synthesis.confidence, synthesis.needs_review)
            })
            .collect();
        let updates = decode::<planned::Review>(&plan.guard.reviews)?
            .into_iter()
            .map(|review| Update { older: review.older.id, newer: review.newer.id, difference: review.difference })
            .collect();
        let archived =
            decode::<planned::Archive>(&plan.archives)?.into_iter().map(|archive| archive.memory_id).collect();
        let promotions = decode::<planned::Promotion>(&plan.promotions)?
            .into_iter()
            .map(|promotion| PromotionReport { category: promotion.category, content: promotion.content })
            .collect();
        Ok(Outcome { merges, syntheses, updates, archived, promotions: Ok(promotions) })
    }

    fn of_applied(applied: &Applied, archived: Vec<Uuid>) -> Self {
        let merges = applied
            .merges
            .iter()
            .map(|merge| {
                Created::merge(merge.memory_id, None, merge.sources.clone(), merge.coverage, merge.compression)
            })
            .collect();
        let syntheses = applied
            .syntheses
            .iter()
            .map(|synthesis| {
                Created::synthesis(synthesis.memory_id, None, synthesis.confidence, synthesis.needs_review)
            })
            .collect();
        let updates = applied
            .reviews
            .iter()
            .map(|review| Update {
                older: review.older_memory_id,
                newer: review.newer_memory_id,
                difference: review.difference.clone(),
            })
            .collect();
        Outcome { merges, syntheses, updates, archived, promotions: Err(applied.playbook_entry_ids.clone()) }
    }
}

impl Report {
    /// Reads the finished job's result and the memories it names.
    pub async fn gather(db: &sqlx::PgPool, job_id: Uuid) -> Result<Self, DemoError> {
        let job = jobs::get(db, job_id).await?.ok_or(DemoError::NoJob(job_id))?;
        let result = job.typed_result().ok_or_else(|| DemoError::Result("the job has no result".to_owned()))?;
        let outcome = match (&result.plan, &result.applied) {
            (Some(plan), _) => Outcome::of_plan(plan)?,
            (None, Some(applied)) => {
                let archived = changes::for_job(db, job_id, Some(ChangeOperation::Archive), None, MAX_ARCHIVES)
                    .await?
                    .into_iter()
                    .map(|change| change.memory_id)
                    .collect();
                Outcome::of_applied(applied, archived)
            }
            (None, None) => return Err(DemoError::Result("the result holds neither a plan nor changes".to_owned())),
        };

        let mut wanted: Vec<Uuid> = outcome.archived.clone();
        for created in outcome.merges.iter().chain(&outcome.syntheses) {
            wanted.extend(&created.sources);
            wanted.push(created.memory_id);
        }
        wanted.extend(outcome.updates.iter().flat_map(|update| [update.older, update.newer]));
        let texts: HashMap<Uuid, String> = memories::get_many(db, &wanted)
            .await?
            .into_iter()
            .map(|memory| (memory.id, memory.execution_summary))
            .collect();
        let text_of = |created: &Created| -> String {
            created.text.clone().or_else(|| texts.get(&created.memory_id).cloned()).unwrap_or_default()
        };
        let named = |id: &Uuid| texts.get(id).map_or_else(|| id.to_string(), |text| first_line(text));

        let merges = outcome
            .merges
            .iter()
            .map(|merge| MergeReport {
                merged_id: merge.memory_id,
                merged_text: text_of(merge),
                members: merge.sources.iter().map(named).collect(),
                coverage: merge.coverage.map(f64::from),
                compression: merge.compression.map(f64::from),
            })
            .collect();
        let syntheses = outcome
            .syntheses
            .iter()
            .map(|synthesis| SynthesisReport {
                text: text_of(synthesis),
                confidence: synthesis.confidence.map(f64::from),
                needs_review: synthesis.needs_review,
            })
            .collect();
        let promoted = match outcome.promotions {
            Ok(planned) => planned,
            Err(entry_ids) => playbook::get_many(db, &entry_ids)
                .await?
                .into_iter()
                .map(|entry| PromotionReport { category: entry.category, content: entry.content })
                .collect(),
        };
        let updates = outcome
            .updates
            .iter()
            .map(|update| UpdateReport {
                older: named(&update.older),
                newer: named(&update.newer),
                values: (update.difference.left.join(", "), update.difference.right.join(", ")),
            })
            .collect();
        let archived = outcome.archived.iter().map(named).collect();
        Ok(Self {
            dry_run: result.dry_run,
            memories_before: job.memories_before,
            memories_after: job.memories_after,
            merges,
            syntheses,
            archived,
            promoted,
            updates,
        })
    }

    /// Sources marked duplicate, over all clusters.
    pub fn memories_merged(&self) -> usize {
        self.merges.iter().map(|merge| merge.members.len()).sum()
    }

    pub fn needing_review(&self) -> usize {
        self.syntheses.iter().filter(|synthesis| synthesis.needs_review).count()
    }
}

/// The first line of a text, cut to [`FIRST_LINE_CHARS`] characters.
pub fn first_line(text: &str) -> String {
    let line = text.lines().find(|line| !line.trim().is_empty()).unwrap_or_default().trim();
    if line.chars().count() <= FIRST_LINE_CHARS {
        return line.to_owned();
    }
    let cut: String = line.chars().take(FIRST_LINE_CHARS - 1).collect();
    format!("{cut}…")
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines().map(|line| format!("{prefix}{line}")).collect::<Vec<_>>().join("\n")
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let would = if self.dry_run { "would be " } else { "" };
        let count = |n: Option<i32>| n.map_or_else(|| "?".to_owned(), |n| n.to_string());
        writeln!(
            f,
            "{}Active memories: {} before, {} after.",
            if self.dry_run { "Dry run (nothing changed). " } else { "" },
            count(self.memories_before),
            count(self.memories_after)
        )?;
        writeln!(
            f,
            "{} memories {would}merged into {} consolidated ones; {} syntheses ({} for review); {} {would}archived; \
             {} {would}promoted to the playbook.",
            self.memories_merged(),
            self.merges.len(),
            self.syntheses.len(),
            self.needing_review(),
            self.archived.len(),
            self.promoted.len()
        )?;
        writeln!(f, "\nClusters ({}): members, then the merged text", self.merges.len())?;
        for (n, merge) in self.merges.iter().enumerate() {
            let figures = match (merge.coverage, merge.compression) {
                (Some(coverage), Some(compression)) => {
                    format!(" (coverage {coverage:.2}, compression {compression:.2})")
                }
                _ => String::new(),
            };
            writeln!(f, "{:>3}. {} memories{figures}", n + 1, merge.members.len())?;
            for member in &merge.members {
                writeln!(f, "     - {member}")?;
            }
            writeln!(f, "     => {}", indent(&merge.merged_text, "        ").trim_start())?;
        }
        writeln!(f, "\nSyntheses ({}):", self.syntheses.len())?;
        for synthesis in &self.syntheses {
            let confidence = synthesis.confidence.map_or_else(String::new, |c| format!("confidence {c:.2}"));
            let review = if synthesis.needs_review { ", needs review" } else { "" };
            writeln!(f, "  - [{confidence}{review}] {}", first_line(&synthesis.text))?;
        }
        writeln!(f, "\nArchived ({}):", self.archived.len())?;
        for archived in &self.archived {
            writeln!(f, "  - {archived}")?;
        }
        writeln!(f, "\nPromoted to the playbook ({}):", self.promoted.len())?;
        for promotion in &self.promoted {
            writeln!(f, "  - [{}] {}", promotion.category, first_line(&promotion.content))?;
        }
        writeln!(f, "\nFor review ({}): syntheses below the confidence bar", self.needing_review())?;
        for synthesis in self.syntheses.iter().filter(|synthesis| synthesis.needs_review) {
            writeln!(f, "  - {}", first_line(&synthesis.text))?;
        }
        writeln!(
            f,
            "\nPossible updates ({}): near-identical memories that state different values, kept apart and \
             queued for review (approve: the newer supersedes the older)",
            self.updates.len()
        )?;
        for update in &self.updates {
            writeln!(f, "  - {} -> {}", update.values.0, update.values.1)?;
            writeln!(f, "    older: {}", update.older)?;
            writeln!(f, "    newer: {}", update.newer)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_skips_blank_lines_and_cuts_long_ones() {
        assert_eq!(first_line("\n  Title  \nbody"), "Title");
        let long = "x".repeat(300);
        let cut = first_line(&long);
        assert_eq!(cut.chars().count(), FIRST_LINE_CHARS);
        assert!(cut.ends_with('…'));
    }
}
