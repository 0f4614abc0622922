//! `consolidator watch`: a job's events followed from the event stream until it ends.

use std::time::Duration;

use consolidator::{bus::messages::JobEvent, watch};
use uuid::Uuid;

use crate::harness::*;

#[tokio::test]
async fn watch_prints_every_event_of_a_job_as_json_lines_until_it_completes() {
    let env = TestEnv::new().await;
    let project = fixtures::project(&env.db, 1).await;
    fixtures::insert(&env.db, project.id, &Scenario::new().all()).await;
    let worker = env.spawn_worker();
    let command = trigger(project.id, serde_json::json!({}));
    publish_trigger(&env.bus, &command).await;

    let mut out = Vec::new();
    let end =
        watch::run(&env.bus, command.job_id, true, Some(Duration::from_secs(30)), &mut out).await.expect("watched");

    assert_eq!(end.event, "completed");
    let events: Vec<JobEvent> = String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is one JobEvent"))
        .collect();
    let kinds: Vec<&str> = events.iter().map(|event| event.event.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"queued"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"completed"), "{kinds:?}");
    assert!(kinds.contains(&"started") && kinds.contains(&"progress"), "{kinds:?}");
    let progress: Vec<f32> = events.iter().filter_map(|event| event.progress).collect();
    assert!(progress.windows(2).all(|pair| pair[0] <= pair[1]), "progress never goes back: {progress:?}");
    assert_eq!(progress.last(), Some(&1.0));
    assert!(events.iter().all(|event| event.job_id == command.job_id && event.project_id == project.id));

    // A later watch replays the finished job and ends at once, with the summary line.
    let mut again = Vec::new();
    let replayed = watch::run(&env.bus, command.job_id, false, Some(Duration::from_secs(5)), &mut again).await;
    let line = String::from_utf8(again).expect("utf-8");
    assert_eq!(replayed.expect("replayed").event, "completed");
    assert!(line.contains("completed: 5 merged, 1 archived") && line.contains("active memories 8 -> 5"), "{line}");
    worker.stop().await;
}

#[tokio::test]
async fn watch_gives_up_on_a_job_without_events_naming_the_wait() {
    let env = TestEnv::new().await;
    let job_id = Uuid::new_v4();

    let error = watch::run(&env.bus, job_id, true, Some(Duration::from_millis(500)), &mut Vec::new()).await;

    let message = error.expect_err("no events").to_string();
    assert!(message.contains(&job_id.to_string()) && message.contains("no event"), "{message}");
}
