//! Which memories a job compares (DESIGN.md §11): everything, or only what is new since the
//! project's last completed job when that job clustered with the same options.

use crate::domain::{ClusteringOptions, Mode, Options};
use crate::store::{jobs::BaseJob, memories::FreshSince};

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub fresh: Option<FreshSince>,
    pub reason: String,
    /// Whether the run judges every pair its options allow (a full run, or an incremental one on
    /// a base with the same options): only such a job may be the base of the next one.
    pub complete: bool,
}

fn full(reason: String) -> Decision {
    Decision { fresh: None, reason, complete: true }
}

pub fn decide(options: &Options, base: Option<&BaseJob>) -> Decision {
    if options.mode == Mode::Full {
        return full("mode full: every pair compared".to_owned());
    }
    let Some(base) = base else {
        return full("no earlier completed job to build on: every pair compared".to_owned());
    };
    let recorded = base.clustering.as_ref().and_then(|c| serde_json::from_value::<ClusteringOptions>(c.0.clone()).ok());
    let (Some(snapshot), Some(recorded)) = (base.snapshot.clone(), recorded) else {
        return full(format!(
            "the last completed job {} recorded no clustering snapshot: every pair compared",
            base.id
        ));
    };
    let fresh = Some(FreshSince { base_job: base.id, snapshot });
    let current = options.clustering();
    if recorded == current {
        return Decision {
            fresh,
            reason: format!(
                "the last completed job {} clustered with the same options: memories new or changed since \
                 its snapshot compared against all",
                base.id
            ),
            complete: true,
        };
    }
    let differs = format!(
        "clustering options differ from the last completed job {} (threshold {} -> {}, min_cluster_size {} -> {}, \
         cross_type {} -> {})",
        base.id,
        recorded.similarity_threshold,
        current.similarity_threshold,
        recorded.min_cluster_size,
        current.min_cluster_size,
        recorded.cross_type,
        current.cross_type
    );
    match options.mode {
        Mode::Incremental => Decision {
            fresh,
            reason: format!(
                "mode incremental requested although {differs}: older pairs are not compared again, and the \
                 next job runs full"
            ),
            complete: false,
        },
        _ => full(format!("{differs}: every pair compared")),
    }
}

#[cfg(test)]
mod tests {
    use sqlx::types::Json;
    use uuid::Uuid;

    use super::*;

    fn base(clustering: Option<ClusteringOptions>) -> BaseJob {
        BaseJob {
            id: Uuid::from_u128(7),
            snapshot: Some("700:705:701,703".to_owned()),
            clustering: clustering.map(|c| Json(serde_json::to_value(c).unwrap())),
        }
    }

    #[test]
    fn auto_is_incremental_when_the_base_job_clustered_the_same_way() {
        let options = Options::default();
        let decision = decide(&options, Some(&base(Some(options.clustering()))));
        let fresh = decision.fresh.unwrap();
        assert_eq!(fresh.base_job, Uuid::from_u128(7));
        assert_eq!(fresh.snapshot, "700:705:701,703");
        assert!(decision.reason.contains("same options"), "{}", decision.reason);
    }

    #[test]
    fn auto_runs_full_without_a_base_or_when_options_changed() {
        let options = Options::default();
        assert!(decide(&options, None).fresh.is_none());
        assert!(decide(&options, Some(&base(None))).fresh.is_none());
        let other = ClusteringOptions { similarity_threshold: 0.85, ..options.clustering() };
        let decision = decide(&options, Some(&base(Some(other))));
        assert!(decision.fresh.is_none());
        assert!(decision.reason.contains("threshold 0.85 -> 0.9"), "{}", decision.reason);
    }

    #[test]
    fn full_and_incremental_modes_are_honoured() {
        let same = base(Some(Options::default().clustering()));
        let full_mode = Options { mode: Mode::Full, ..Options::default() };
        assert!(decide(&full_mode, Some(&same)).fresh.is_none());
        let forced = Options { mode: Mode::Incremental, similarity_threshold: 0.8, ..Options::default() };
        let decision = decide(&forced, Some(&same));
        assert!(decision.fresh.is_some());
        assert!(decision.reason.contains("mode incremental requested"), "{}", decision.reason);
        assert!(!decision.complete, "a forced run over other options cannot be the next one's base");
        assert!(decide(&Options::default(), Some(&same)).complete);
    }
}
