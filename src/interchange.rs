//! The memory interchange format (JSON Lines, DESIGN.md §10): import and export.
//!
//! [`MemoryInput`] is a memory as it arrives, from a file or the ingest API, with the one set of
//! rules both apply. An import is all or nothing: every line is parsed and validated first (an
//! error names its line), then the whole file goes in one transaction, a statement per 1 000.

use std::io::{BufRead, Write};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::NewMemory;
use crate::llm::texts::{self, TextEmbedError, TextEmbedder};
use crate::{
    domain::{ArchiveReason, MemoryType},
    store::{
        StoreError,
        memories::{self, ListFilter},
        projects,
    },
};

/// Memories per insert statement.
const BATCH: usize = 1_000;
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
pub const MAX_TASK_ID_CHARS: usize = 256;
pub const MAX_TAGS: usize = 64;
pub const MAX_TAG_CHARS: usize = 128;
pub const MAX_FILES: usize = 256;
pub const MAX_PATH_CHARS: usize = 4096;
pub const MAX_EMBEDDING_DIM: usize = 16_384;
/// Far above any real count, far below where counting one more reuse would overflow.
pub const MAX_REUSED_COUNT: i32 = 1_000_000_000;

/// One memory as it arrives, from an import file or the ingest API. `id` and `learned_at`
/// default to a new id and the time of arrival.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryInput {
    #[serde(default)]
    pub id: Option<Uuid>,
    /// At most 256 characters.
    #[serde(default)]
    #[schema(max_length = 256)]
    pub task_id: Option<String>,
    /// Required, not blank; at most 65 536 bytes (as are goal, result and feedback).
    #[schema(min_length = 1, max_length = 65536)]
    pub execution_summary: String,
    #[schema(inline)]
    pub memory_type: MemoryType,
    #[serde(default)]
    #[schema(max_length = 65536)]
    pub goal: Option<String>,
    #[serde(default)]
    #[schema(max_length = 65536)]
    pub result: Option<String>,
    #[serde(default)]
    #[schema(max_length = 65536)]
    pub feedback: Option<String>,
    /// At most 64 tags of 1 to 128 characters.
    #[serde(default)]
    #[schema(max_items = 64)]
    pub tags: Vec<String>,
    /// At most 256 paths of 1 to 4096 characters.
    #[serde(default)]
    #[schema(max_items = 256)]
    pub files: Vec<String>,
    /// Finite numbers, not all zero; the project's dimension (fixed by its first embedding,
    /// 1 to 16 384). Optional: without it the service embeds `execution_summary` when
    /// EMBEDDING_BASE_URL is set; otherwise the memory is stored without an embedding (never
    /// clustered until the next consolidation job with the endpoint embeds it) and the answer warns.
    #[serde(default)]
    #[schema(min_items = 1, max_items = 16384)]
    pub context_embedding: Option<Vec<f32>>,
    #[serde(default)]
    pub success: Option<bool>,
    #[serde(default, deserialize_with = "crate::domain::integral::integer")]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub reused_count: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reused_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub learned_at: Option<DateTime<Utc>>,
    /// Only for a consolidated memory: the memory_type its sources share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(inline)]
    pub source_type: Option<MemoryType>,
    /// Only for a consolidated memory: the task ids of its sources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub task_ids: Vec<String>,
}

/// What consolidation left on a memory, beyond what an agent writes: exported with it and
/// restored by `import` (never accepted by the ingest API), so export, import, export is stable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryState {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_duplicate: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<Uuid>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_archived: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_reason: Option<ArchiveReason>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consolidated_from: Vec<Uuid>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub synthesized_from: Vec<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthesis_confidence: Option<f32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub needs_review: bool,
    /// Never merged, archived or superseded (`POST /memories/{id}/pin`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pinned: bool,
}

/// The keys of [`MemoryState`] in a line.
const STATE_KEYS: [&str; 10] = [
    "is_duplicate",
    "duplicate_of",
    "is_archived",
    "archived_at",
    "archive_reason",
    "consolidated_from",
    "synthesized_from",
    "synthesis_confidence",
    "needs_review",
    "pinned",
];

impl MemoryState {
    fn validate(&self) -> Result<(), FieldError> {
        if self.duplicate_of.is_some() && !self.is_duplicate {
            return Err(invalid("duplicate_of", "only a duplicate (is_duplicate: true) names what it duplicates"));
        }
        if (self.archive_reason.is_some() || self.archived_at.is_some()) && !self.is_archived {
            return Err(invalid("archive_reason", "only an archived memory (is_archived: true) has an archive reason"));
        }
        if self.synthesis_confidence.is_some_and(|c| !(0.0..=1.0).contains(&c)) {
            return Err(invalid("synthesis_confidence", "must be 0 to 1"));
        }
        Ok(())
    }
}

/// A field that breaks a rule, and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError { field, message: message.into() }
}

#[derive(Debug, thiserror::Error)]
pub enum InterchangeError {
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("project {0} does not exist")]
    UnknownProject(Uuid),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}; nothing was imported")]
    Embedding(#[from] TextEmbedError),
}

impl MemoryInput {
    /// Checks every field; `dim` is the embedding dimension in force, fixed by the first
    /// embedding seen when still None.
    pub fn validate(&self, dim: &mut Option<usize>) -> Result<(), FieldError> {
        if self.execution_summary.trim().is_empty() {
            return Err(invalid("execution_summary", "must not be empty"));
        }
        let texts = [
            ("execution_summary", Some(&self.execution_summary)),
            ("goal", self.goal.as_ref()),
            ("result", self.result.as_ref()),
            ("feedback", self.feedback.as_ref()),
        ];
        for (field, text) in texts {
            if text.is_some_and(|text| text.len() > MAX_TEXT_BYTES) {
                return Err(invalid(field, format!("at most {MAX_TEXT_BYTES} bytes")));
            }
        }
        if self.task_id.as_ref().is_some_and(|task| task.chars().count() > MAX_TASK_ID_CHARS) {
            return Err(invalid("task_id", format!("at most {MAX_TASK_ID_CHARS} characters")));
        }
        if self.tags.len() > MAX_TAGS {
            return Err(invalid("tags", format!("at most {MAX_TAGS} tags")));
        }
        if self.tags.iter().any(|tag| tag.trim().is_empty() || tag.chars().count() > MAX_TAG_CHARS) {
            return Err(invalid("tags", format!("each tag must be 1 to {MAX_TAG_CHARS} characters")));
        }
        if self.files.len() > MAX_FILES {
            return Err(invalid("files", format!("at most {MAX_FILES} paths")));
        }
        if self.files.iter().any(|path| path.is_empty() || path.chars().count() > MAX_PATH_CHARS) {
            return Err(invalid("files", format!("each path must be 1 to {MAX_PATH_CHARS} characters")));
        }
        self.refuse_nul()?;
        if let Some(source_type) = self.source_type {
            if self.memory_type != MemoryType::Consolidated {
                return Err(invalid("source_type", "only a consolidated memory has a source type"));
            }
            if matches!(source_type, MemoryType::Consolidated | MemoryType::Synthesis) {
                return Err(invalid(
                    "source_type",
                    format!("must be the type of original memories, got {source_type}"),
                ));
            }
        }
        if self.task_ids.len() > MAX_TAGS || self.task_ids.iter().any(|t| t.chars().count() > MAX_TASK_ID_CHARS) {
            return Err(invalid(
                "task_ids",
                format!("at most {MAX_TAGS} task ids of at most {MAX_TASK_ID_CHARS} characters"),
            ));
        }
        if !(0..=MAX_REUSED_COUNT).contains(&self.reused_count) {
            return Err(invalid("reused_count", format!("must be 0 to {MAX_REUSED_COUNT}")));
        }
        if let Some(embedding) = &self.context_embedding {
            check_embedding(embedding, dim).map_err(|message| invalid("context_embedding", message))?;
        }
        Ok(())
    }

    /// PostgreSQL cannot store a NUL character (U+0000) in text: refused, naming the field.
    fn refuse_nul(&self) -> Result<(), FieldError> {
        let has_nul = |text: &String| text.contains('\0');
        let single = [
            ("execution_summary", Some(&self.execution_summary)),
            ("task_id", self.task_id.as_ref()),
            ("goal", self.goal.as_ref()),
            ("result", self.result.as_ref()),
            ("feedback", self.feedback.as_ref()),
        ];
        let lists = [("tags", &self.tags), ("files", &self.files), ("task_ids", &self.task_ids)];
        let field = single
            .into_iter()
            .find(|(_, text)| text.is_some_and(has_nul))
            .map(|(field, _)| field)
            .or_else(|| lists.into_iter().find(|(_, list)| list.iter().any(has_nul)).map(|(field, _)| field));
        match field {
            Some(field) => Err(invalid(field, "contains a NUL character (U+0000), which cannot be stored")),
            None => Ok(()),
        }
    }

    pub fn into_new_memory(self, now: DateTime<Utc>) -> NewMemory {
        NewMemory {
            id: self.id.unwrap_or_else(Uuid::new_v4),
            task_id: self.task_id,
            execution_summary: self.execution_summary,
            memory_type: self.memory_type,
            goal: self.goal,
            result: self.result,
            feedback: self.feedback,
            tags: self.tags,
            files: self.files,
            embedding: self.context_embedding,
            success: self.success,
            reused_count: self.reused_count,
            last_reused_at: self.last_reused_at,
            learned_at: self.learned_at.unwrap_or(now),
            source_type: self.source_type,
            task_ids: self.task_ids,
            consolidated_from: Vec::new(),
            synthesized_from: Vec::new(),
            synthesis_confidence: None,
            needs_review: false,
        }
    }
}

/// A usable embedding of the dimension in force (the first one seen fixes it).
pub fn check_embedding(embedding: &[f32], dim: &mut Option<usize>) -> Result<(), String> {
    if embedding.is_empty() || embedding.len() > MAX_EMBEDDING_DIM {
        return Err(format!("must have 1 to {MAX_EMBEDDING_DIM} values, got {}", embedding.len()));
    }
    if let Some(expected) = *dim {
        if embedding.len() != expected {
            return Err(format!("the project's embeddings have {expected} dimensions, got {}", embedding.len()));
        }
    }
    if embedding.iter().any(|value| !value.is_finite()) {
        return Err("values must be finite 32-bit floats".to_owned());
    }
    if embedding.iter().all(|value| *value == 0.0) {
        return Err("must not be all zeros (it has no direction)".to_owned());
    }
    *dim = Some(embedding.len());
    Ok(())
}

/// Parses and validates every line; the first embedding fixes the dimension if `dim` is None.
pub fn parse(reader: impl BufRead, dim: Option<usize>) -> Result<Vec<NewMemory>, InterchangeError> {
    Ok(parse_with_state(reader, dim)?.into_iter().map(|(memory, _)| memory).collect())
}

/// [`parse`], keeping each memory's exported state (marks and provenance).
pub fn parse_with_state(
    reader: impl BufRead,
    mut dim: Option<usize>,
) -> Result<Vec<(NewMemory, MemoryState)>, InterchangeError> {
    let now = Utc::now();
    let mut parsed = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line_number = index + 1;
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let at_line = |message: String| InterchangeError::Line { line: line_number, message };
        let mut fields: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&line).map_err(|error| at_line(within_line(&error)))?;
        let state: serde_json::Map<String, serde_json::Value> =
            STATE_KEYS.iter().filter_map(|key| fields.remove_entry(*key)).collect();
        // Read from the text when it holds no state, so an error keeps its column.
        let memory: MemoryInput =
            if state.is_empty() { serde_json::from_str(&line) } else { serde_json::from_value(fields.into()) }
                .map_err(|error| at_line(within_line(&error)))?;
        let state: MemoryState = serde_json::from_value(state.into()).map_err(|error| at_line(within_line(&error)))?;
        let field_error = |error: FieldError| at_line(format!("{}: {}", error.field, error.message));
        memory.validate(&mut dim).map_err(field_error)?;
        state.validate().map_err(field_error)?;
        let memory = NewMemory {
            consolidated_from: state.consolidated_from.clone(),
            synthesized_from: state.synthesized_from.clone(),
            synthesis_confidence: state.synthesis_confidence,
            needs_review: state.needs_review,
            ..memory.into_new_memory(now)
        };
        parsed.push((memory, state));
    }
    Ok(parsed)
}

/// Loads a whole file into a project, or nothing of it; lines without `context_embedding` are
/// stored without one (see [`import_embedding`]).
pub async fn import(db: &sqlx::PgPool, project_id: Uuid, reader: impl BufRead) -> Result<usize, InterchangeError> {
    Ok(import_embedding(db, project_id, reader, None).await?.count)
}

/// What an import stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub count: usize,
    /// Memories that came without `context_embedding` and were embedded by the endpoint.
    pub embedded: usize,
    /// Set when memories were stored without an embedding (no endpoint configured).
    pub warning: Option<String>,
}

/// [`import`], embedding the lines without `context_embedding` with `embedder` first (all or
/// nothing: an endpoint failure imports nothing).
pub async fn import_embedding(
    db: &sqlx::PgPool,
    project_id: Uuid,
    reader: impl BufRead,
    embedder: Option<&TextEmbedder>,
) -> Result<Imported, InterchangeError> {
    let project = projects::get(db, project_id).await?.ok_or(InterchangeError::UnknownProject(project_id))?;
    let dim = project.embedding_dim.and_then(|dim| usize::try_from(dim).ok());
    let parsed = parse_with_state(reader, dim)?;
    let (mut memories, states): (Vec<NewMemory>, Vec<MemoryState>) = parsed.into_iter().unzip();
    let filled = texts::fill_missing(embedder, &mut memories, dim).await?;
    let marks: Vec<(Uuid, MemoryState)> = memories.iter().map(|m| m.id).zip(states).collect();
    let count = load_with_state(db, project_id, &memories, &marks).await?;
    Ok(Imported { count, embedded: filled.embedded, warning: filled.warning() })
}

/// Inserts validated memories into a project in one transaction, fixing its embedding
/// dimension on first use (a different dimension in force refuses the whole load).
pub async fn load(db: &sqlx::PgPool, project_id: Uuid, memories: &[NewMemory]) -> Result<usize, InterchangeError> {
    load_with_state(db, project_id, memories, &[]).await
}

/// [`load`], then the duplicate and archive marks of `states`, in the same transaction.
async fn load_with_state(
    db: &sqlx::PgPool,
    project_id: Uuid,
    memories: &[NewMemory],
    states: &[(Uuid, MemoryState)],
) -> Result<usize, InterchangeError> {
    let mut tx = db.begin().await.map_err(StoreError::from)?;
    if let Some(dim) = memories.iter().find_map(|memory| memory.embedding.as_ref().map(Vec::len)) {
        let in_force = projects::fix_embedding_dim(&mut *tx, project_id, dim as i32).await?;
        if in_force != Some(dim as i32) {
            return Err(InterchangeError::Line {
                line: 1,
                message: format!("context_embedding: the project's embeddings have {in_force:?} dimensions, got {dim}"),
            });
        }
    }
    for batch in memories.chunks(BATCH) {
        memories::insert_batch(&mut tx, project_id, batch).await?;
    }
    let marked: Vec<&(Uuid, MemoryState)> =
        states.iter().filter(|(_, state)| state.is_duplicate || state.is_archived).collect();
    for batch in marked.chunks(BATCH) {
        let marks: Vec<memories::ImportedMarks> = batch
            .iter()
            .map(|(id, state)| memories::ImportedMarks {
                id: *id,
                marks: memories::Marks {
                    is_duplicate: state.is_duplicate,
                    duplicate_of: state.duplicate_of,
                    is_archived: state.is_archived,
                    archive_reason: state.archive_reason,
                },
                archived_at: state.archived_at,
            })
            .collect();
        let foreign = memories::set_imported_marks(&mut tx, project_id, &marks)
            .await
            .map_err(|error| InterchangeError::Line { line: 0, message: format!("duplicate_of: {error}") })?;
        if let Some(id) = foreign.first() {
            return Err(InterchangeError::Line {
                line: 0,
                message: format!("duplicate_of: memory {id} is marked a duplicate of a memory of another project"),
            });
        }
    }
    let pinned: Vec<Uuid> = states.iter().filter(|(_, state)| state.pinned).map(|(id, _)| *id).collect();
    memories::set_pinned(&mut tx, &pinned, true).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(memories.len())
}

/// Writes every memory of the project (archived, duplicates and retired ones included, with
/// their marks and provenance) as JSON Lines.
pub async fn export(db: &sqlx::PgPool, project_id: Uuid, mut out: impl Write) -> Result<usize, InterchangeError> {
    let mut filter =
        ListFilter { include_archived: true, include_duplicates: true, limit: BATCH as i64, ..Default::default() };
    let mut written = 0;
    loop {
        let page = memories::list(db, project_id, &filter).await?;
        for row in &page {
            let memory = MemoryInput {
                id: Some(row.id),
                task_id: row.task_id.clone(),
                execution_summary: row.execution_summary.clone(),
                memory_type: row.memory_type,
                goal: row.goal.clone(),
                result: row.result.clone(),
                feedback: row.feedback.clone(),
                tags: row.tags.clone(),
                files: row.files.clone(),
                context_embedding: row.embedding.clone(),
                success: row.success,
                reused_count: row.reused_count,
                last_reused_at: row.last_reused_at,
                learned_at: Some(row.learned_at),
                source_type: row.source_type,
                task_ids: row.task_ids.clone(),
            };
            let state = MemoryState {
                is_duplicate: row.is_duplicate,
                duplicate_of: row.duplicate_of,
                is_archived: row.is_archived,
                archived_at: row.archived_at,
                archive_reason: row.archive_reason,
                pinned: row.pinned,
                consolidated_from: row.consolidated_from.clone().unwrap_or_default(),
                synthesized_from: row.synthesized_from.clone().unwrap_or_default(),
                synthesis_confidence: row.synthesis_confidence,
                needs_review: row.needs_review,
            };
            let mut line = serde_json::to_value(&memory).map_err(std::io::Error::from)?;
            if let (Some(fields), serde_json::Value::Object(state)) =
                (line.as_object_mut(), serde_json::to_value(&state).map_err(std::io::Error::from)?)
            {
                fields.extend(state);
            }
            serde_json::to_writer(&mut out, &line).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
            written += 1;
        }
        match page.last() {
            Some(last) if page.len() == BATCH => filter.after = Some(last.id),
            _ => break,
        }
    }
    Ok(written)
}

/// serde_json's message with the column only: each JSON document is one line of the file, so its
/// own "line 1" would contradict the file's line number beside it.
fn within_line(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    match message.strip_suffix(&position) {
        Some(message) => format!("{message} (column {})", error.column()),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"id":"53dbddf1-7b5c-4b88-a1f8-95be0f98b3fd","execution_summary":"x","memory_type":"warning","tags":["a"],"files":[],"context_embedding":[0.5,0.5],"reused_count":1,"learned_at":"2026-11-01T00:00:00Z"}"#;

    #[test]
    fn a_nul_character_in_any_text_is_refused_naming_the_field() {
        for (field, nul_line) in [
            ("execution_summary", LINE.replace(r#""x""#, r#""x\u0000""#)),
            ("tags", LINE.replace(r#"["a"]"#, r#"["a\u0000"]"#)),
            ("files", LINE.replace(r#""files":[]"#, r#""files":["src/\u0000"]"#)),
        ] {
            match parse(format!("{LINE}\n{nul_line}\n").as_bytes(), None) {
                Err(InterchangeError::Line { line, message }) => {
                    assert_eq!(line, 2);
                    assert!(message.contains(field) && message.contains("NUL"), "{message}");
                }
                other => panic!("{field}: expected a line error, got {other:?}"),
            }
        }
    }

    #[test]
    fn an_exported_state_is_read_back_and_an_inconsistent_one_is_refused_naming_the_field() {
        let target = "0b1e2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
        let marked = LINE.replace(
            r#""reused_count":1"#,
            &format!(
                r#""reused_count":1,"is_duplicate":true,"duplicate_of":"{target}","consolidated_from":["{target}"]"#
            ),
        );
        let parsed = parse_with_state(marked.as_bytes(), None).expect("parsed");
        let (memory, state) = &parsed[0];
        assert!(state.is_duplicate && state.duplicate_of == target.parse().ok());
        assert_eq!(memory.consolidated_from, vec![target.parse::<Uuid>().expect("uuid")]);

        let orphan = LINE.replace(r#""reused_count":1"#, r#""reused_count":1,"archive_reason":"manual""#);
        match parse_with_state(orphan.as_bytes(), None) {
            Err(InterchangeError::Line { line: 1, message }) => {
                assert!(message.contains("archive_reason"), "{message}")
            }
            other => panic!("expected a line error, got {other:?}"),
        }
    }

    #[test]
    fn a_bad_line_is_reported_with_its_number() {
        let input = format!("{LINE}\n{}\n", LINE.replace("warning", "rumour"));
        match parse(input.as_bytes(), None) {
            Err(InterchangeError::Line { line, message }) => {
                assert_eq!(line, 2);
                assert!(message.contains("rumour"), "{message}");
                assert!(!message.contains("line 1") && message.contains("(column "), "{message}");
            }
            other => panic!("expected a line error, got {other:?}"),
        }
    }

    #[test]
    fn the_first_embedding_fixes_the_dimension() {
        let other = LINE.replace("[0.5,0.5]", "[0.5,0.5,0.5]");
        let error = parse(format!("{LINE}\n{other}\n").as_bytes(), None).unwrap_err();
        assert_eq!(error.to_string(), "line 2: context_embedding: the project's embeddings have 2 dimensions, got 3");
        assert_eq!(parse(format!("{LINE}\n\n{LINE}").as_bytes(), None).unwrap().len(), 2);
    }
}
