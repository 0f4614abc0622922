//! The demo's before/after report: counts, each cluster's members beside the merged text,
//! syntheses, archived memories, promotions and what waits for review. Read from the job's
//! stored result (for a dry run, its plan) and the memories it names.

use std::{collections::HashMap, fmt};

use serde_json::Value;
use uuid::Uuid;

use super::DemoError;
use crate::domain::ChangeOperation;
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

impl Report {
    /// Reads the finished job's result and the memories it names.
    pub async fn gather(db: &sqlx::PgPool, job_id: Uuid) -> Result<Self, DemoError> {
        let job = jobs::get(db, job_id).await?.ok_or(DemoError::NoJob(job_id))?;
        let result = job.result.map(|result| result.0).unwrap_or(Value::Null);
        let dry_run = result["dry_run"].as_bool().unwrap_or(false);
        let plan = if dry_run { &result["plan"] } else { &result };
        let merges = list(plan, "merges");
        let syntheses = list(plan, "syntheses");
        let reviews = if dry_run { list(&plan["guard"], "reviews") } else { list(&result, "reviews") };
        // A stored review names its memories; a planned one holds them as [id, version].
        let side =
            |review: &Value, name: &str| id(&review[format!("{name}_memory_id")]).or_else(|| id(&review[name][0]));
        let archived_ids: Vec<Uuid> = if dry_run {
            list(plan, "archives").iter().filter_map(|archive| id(&archive["memory_id"])).collect()
        } else {
            changes::for_job(db, job_id, Some(ChangeOperation::Archive), None, MAX_ARCHIVES)
                .await?
                .into_iter()
                .map(|change| change.memory_id)
                .collect()
        };

        let mut wanted: Vec<Uuid> = archived_ids.clone();
        for merge in merges {
            wanted.extend(list(merge, "sources").iter().filter_map(source_id));
            wanted.extend(id(&merge["memory_id"]));
        }
        wanted.extend(syntheses.iter().filter_map(|synthesis| id(&synthesis["memory_id"])));
        wanted.extend(reviews.iter().flat_map(|review| [side(review, "older"), side(review, "newer")]).flatten());
        let texts: HashMap<Uuid, String> = memories::get_many(db, &wanted)
            .await?
            .into_iter()
            .map(|memory| (memory.id, memory.execution_summary))
            .collect();
        let text_of = |item: &Value| -> String {
            // A dry run's plan holds the text it would write; a real run's result, the id.
            item["memory"]["execution_summary"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| id(&item["memory_id"]).and_then(|id| texts.get(&id).cloned()))
                .unwrap_or_default()
        };

        let merges = merges
            .iter()
            .map(|merge| MergeReport {
                merged_id: id(&merge["memory_id"]).or_else(|| id(&merge["memory"]["id"])).unwrap_or_default(),
                merged_text: text_of(merge),
                members: list(merge, "sources")
                    .iter()
                    .filter_map(source_id)
                    .map(|source| texts.get(&source).map_or_else(|| source.to_string(), |text| first_line(text)))
                    .collect(),
                coverage: merge["coverage"].as_f64(),
                compression: merge["compression"].as_f64(),
            })
            .collect();
        let syntheses = syntheses
            .iter()
            .map(|synthesis| SynthesisReport {
                text: text_of(synthesis),
                confidence: synthesis["confidence"].as_f64(),
                needs_review: synthesis["needs_review"].as_bool().unwrap_or(false),
            })
            .collect();
        let promoted = if dry_run {
            list(plan, "promotions")
                .iter()
                .map(|promotion| PromotionReport {
                    category: promotion["category"].as_str().unwrap_or_default().to_owned(),
                    content: promotion["content"].as_str().unwrap_or_default().to_owned(),
                })
                .collect()
        } else {
            let entry_ids: Vec<Uuid> = list(&result, "playbook_entry_ids").iter().filter_map(id).collect();
            playbook::get_many(db, &entry_ids)
                .await?
                .into_iter()
                .map(|entry| PromotionReport { category: entry.category, content: entry.content })
                .collect()
        };
        let named = |memory: Option<Uuid>| {
            memory.map_or_else(String::new, |id| texts.get(&id).map_or_else(|| id.to_string(), |text| first_line(text)))
        };
        let updates = reviews
            .iter()
            .map(|review| UpdateReport {
                older: named(side(review, "older")),
                newer: named(side(review, "newer")),
                values: (values(&review["difference"]["left"]), values(&review["difference"]["right"])),
            })
            .collect();
        let archived = archived_ids
            .iter()
            .map(|id| texts.get(id).map_or_else(|| id.to_string(), |text| first_line(text)))
            .collect();
        Ok(Self {
            dry_run,
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

fn list<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value[key].as_array().map_or(&[], Vec::as_slice)
}

fn id(value: &Value) -> Option<Uuid> {
    value.as_str().and_then(|raw| raw.parse().ok())
}

/// A source is an id (a real run's result) or `{id, version}` (a dry run's plan).
fn source_id(value: &Value) -> Option<Uuid> {
    id(value).or_else(|| id(&value["id"]))
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

/// A review's differing values as one line.
fn values(side: &Value) -> String {
    match side {
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().map_or_else(|| item.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Null => String::new(),
        other => other.as_str().map_or_else(|| other.to_string(), str::to_owned),
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

    #[test]
    fn sources_are_read_as_ids_or_as_id_and_version() {
        let id = Uuid::new_v4();
        assert_eq!(source_id(&serde_json::json!(id.to_string())), Some(id));
        assert_eq!(source_id(&serde_json::json!({"id": id.to_string(), "version": 3})), Some(id));
        assert_eq!(source_id(&serde_json::json!(7)), None);
    }
}
