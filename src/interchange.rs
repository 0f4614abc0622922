//! The memory interchange format (JSON Lines, DESIGN.md §10): import and export.
//!
//! An import is all or nothing: every line is parsed and validated first (an error names its
//! line), then the whole file goes in one transaction, a batch statement per 1 000 memories.

use std::io::{BufRead, Write};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    engine::model::MemoryType,
    store::{
        StoreError,
        memories::{self, ListFilter, NewMemory},
        projects,
    },
};

/// Memories per insert statement.
const BATCH: usize = 1_000;
/// Largest accepted execution summary, in bytes.
pub const MAX_SUMMARY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InterchangeMemory {
    pub id: Uuid,
    #[serde(default)]
    pub task_id: Option<String>,
    pub execution_summary: String,
    pub memory_type: MemoryType,
    #[serde(default)]
    pub goal: Option<String>,
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub feedback: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default)]
    pub context_embedding: Option<Vec<f32>>,
    #[serde(default)]
    pub success: Option<bool>,
    #[serde(default)]
    pub reused_count: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reused_at: Option<DateTime<Utc>>,
    pub learned_at: DateTime<Utc>,
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
}

impl InterchangeMemory {
    /// Checks what the database would refuse less clearly; `dim` is the dimension in force.
    pub fn validate(&self, dim: Option<usize>) -> Result<(), String> {
        if self.execution_summary.trim().is_empty() {
            return Err("execution_summary must not be empty".to_owned());
        }
        if self.execution_summary.len() > MAX_SUMMARY_BYTES {
            return Err(format!("execution_summary is longer than {MAX_SUMMARY_BYTES} bytes"));
        }
        if self.reused_count < 0 {
            return Err("reused_count must not be negative".to_owned());
        }
        if let Some(embedding) = &self.context_embedding {
            if embedding.is_empty() {
                return Err("context_embedding must not be empty".to_owned());
            }
            if let Some(dim) = dim.filter(|dim| *dim != embedding.len()) {
                return Err(format!("context_embedding has {} dimensions, the project uses {dim}", embedding.len()));
            }
            if embedding.iter().any(|value| !value.is_finite()) {
                return Err("context_embedding holds a value that is not a finite number".to_owned());
            }
        }
        Ok(())
    }

    pub fn into_new_memory(self) -> NewMemory {
        NewMemory {
            id: self.id,
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
            learned_at: self.learned_at,
        }
    }
}

/// Parses and validates every line; the first embedding fixes the dimension if `dim` is None.
pub fn parse(reader: impl BufRead, mut dim: Option<usize>) -> Result<Vec<NewMemory>, InterchangeError> {
    let mut parsed = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line_number = index + 1;
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let memory: InterchangeMemory = serde_json::from_str(&line)
            .map_err(|error| InterchangeError::Line { line: line_number, message: error.to_string() })?;
        memory.validate(dim).map_err(|message| InterchangeError::Line { line: line_number, message })?;
        if dim.is_none() {
            dim = memory.context_embedding.as_ref().map(Vec::len);
        }
        parsed.push(memory.into_new_memory());
    }
    Ok(parsed)
}

/// Loads a whole file into a project, or nothing of it.
pub async fn import(db: &sqlx::PgPool, project_id: Uuid, reader: impl BufRead) -> Result<usize, InterchangeError> {
    let project = projects::get(db, project_id).await?.ok_or(InterchangeError::UnknownProject(project_id))?;
    let memories = parse(reader, project.embedding_dim.and_then(|dim| usize::try_from(dim).ok()))?;
    let mut tx = db.begin().await.map_err(StoreError::from)?;
    if let Some(dim) = memories.iter().find_map(|memory| memory.embedding.as_ref().map(Vec::len)) {
        projects::fix_embedding_dim(&mut *tx, project_id, dim as i32).await?;
    }
    for batch in memories.chunks(BATCH) {
        memories::insert_batch(&mut tx, project_id, batch, &[]).await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(memories.len())
}

/// Writes every memory of the project (archived and duplicates included) as JSON Lines.
pub async fn export(db: &sqlx::PgPool, project_id: Uuid, mut out: impl Write) -> Result<usize, InterchangeError> {
    let mut filter =
        ListFilter { include_archived: true, include_duplicates: true, limit: BATCH as i64, ..Default::default() };
    let mut written = 0;
    loop {
        let page = memories::list(db, project_id, &filter).await?;
        for row in &page {
            let memory = InterchangeMemory {
                id: row.id,
                task_id: row.task_id.clone(),
                execution_summary: row.execution_summary.clone(),
                memory_type: row.memory_type()?,
                goal: row.goal.clone(),
                result: row.result.clone(),
                feedback: row.feedback.clone(),
                tags: row.tags.clone(),
                files: row.files.clone(),
                context_embedding: row.embedding()?,
                success: row.success,
                reused_count: row.reused_count,
                last_reused_at: row.last_reused_at,
                learned_at: row.learned_at,
            };
            serde_json::to_writer(&mut out, &memory).map_err(std::io::Error::from)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"id":"53dbddf1-7b5c-4b88-a1f8-95be0f98b3fd","execution_summary":"x","memory_type":"warning","tags":["a"],"files":[],"context_embedding":[0.5,0.5],"reused_count":1,"learned_at":"2026-11-01T00:00:00Z"}"#;

    #[test]
    fn a_bad_line_is_reported_with_its_number() {
        let input = format!("{LINE}\n{}\n", LINE.replace("warning", "rumour"));
        match parse(input.as_bytes(), None) {
            Err(InterchangeError::Line { line, message }) => {
                assert_eq!(line, 2);
                assert!(message.contains("rumour"), "{message}");
            }
            other => panic!("expected a line error, got {other:?}"),
        }
    }

    #[test]
    fn the_first_embedding_fixes_the_dimension() {
        let other = LINE.replace("[0.5,0.5]", "[0.5,0.5,0.5]");
        let error = parse(format!("{LINE}\n{other}\n").as_bytes(), None).unwrap_err();
        assert!(error.to_string().contains("line 2: context_embedding has 3 dimensions, the project uses 2"));
        assert_eq!(parse(format!("{LINE}\n\n{LINE}").as_bytes(), None).unwrap().len(), 2);
    }
}
