//! The console in a real headless Chromium (Debian's `chromium` and `chromium-driver`; `.ci/run`
//! installs them), driven over WebDriver against a live gateway and worker: token, project,
//! a dry run and a real run followed to 100 %, a cluster's before/after, a rollback that
//! restores the memories. Screenshots of the main pages go to CONSOLE_SCREENSHOTS (default
//! target/console-screenshots).

use std::{path::PathBuf, process::Stdio, time::Duration};

use consolidator::demo;
use fantoccini::{Client, ClientBuilder, Locator, key::Key};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use uuid::Uuid;

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(30);
const WINDOW: (u32, u32) = (1366, 900);

/// chromedriver on a free port, and a WebDriver session of a headless Chromium in a fresh profile.
struct Browser {
    client: Client,
    _driver: Child,
    profile: PathBuf,
}

impl Browser {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver runs (apt-get install chromium chromium-driver; .ci/run does)");
        let profile = std::env::temp_dir().join(format!("consolidator-chromium-{}", Uuid::new_v4().simple()));
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({"args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
                format!("--user-data-dir={}", profile.display()),
                format!("--window-size={},{}", WINDOW.0, WINDOW.1),
            ]}),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut attempt = 0;
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector).capabilities(capabilities.clone()).connect(&url).await {
                Ok(client) => break client,
                Err(error) if attempt < 50 => {
                    attempt += 1;
                    tracing::debug!(%error, "chromedriver not ready");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => panic!("no WebDriver session: {error}"),
            }
        };
        client.set_window_size(WINDOW.0, WINDOW.1).await.expect("window size");
        Self { client, _driver: driver, profile }
    }

    async fn css(&self, selector: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(selector))
            .await
            .unwrap_or_else(|error| panic!("no {selector} on the page: {error}"))
    }

    /// Waits until the text of the first element matching `selector` satisfies `check`.
    async fn text_until(&self, selector: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut last = String::new();
        while tokio::time::Instant::now() < deadline {
            if let Ok(element) = self.client.find(Locator::Css(selector)).await {
                if let Ok(text) = element.text().await {
                    if check(&text) {
                        return text;
                    }
                    last = text;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let page = match self.client.find(Locator::Css("main")).await {
            Ok(main) => main.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let cut = |text: &str| text.chars().take(600).collect::<String>();
        panic!("{selector} never showed what was expected; last text: {:?}; the page: {}", cut(&last), cut(&page));
    }

    /// The job the trigger form created last, from its "Open its result" link, once it is not
    /// `previous` (the form's answer to an earlier trigger).
    async fn triggered_job(&self, previous: Option<Uuid>) -> Uuid {
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::time::Instant::now() < deadline {
            // Read in one script: the answer is re-rendered, so a found element may go stale.
            let script =
                "const a = document.querySelector('#trigger-result a'); return a ? a.getAttribute('href') : ''";
            let link = self.client.execute(script, vec![]).await.expect("script ran");
            let job = link.as_str().unwrap_or_default().trim_start_matches("#/jobs/").parse().ok();
            if job.is_some() && job != previous {
                return job.unwrap_or_default();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the trigger form never named a new job");
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
        let dir = std::env::var_os("CONSOLE_SCREENSHOTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots"));
        std::fs::create_dir_all(&dir).expect("screenshot folder");
        std::fs::write(dir.join(format!("console-{name}.png")), png).expect("screenshot written");
    }

    async fn stop(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    /// A test that panics never closes its session, and killing chromedriver orphans the browser
    /// it started: this test's browser processes are found by their own profile directory.
    fn drop(&mut self) {
        let profile = format!("--user-data-dir={}", self.profile.display());
        let _ = std::process::Command::new("pkill").args(["-f", "--", &profile]).stderr(Stdio::null()).status();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

async fn active_memories(gateway: &TestGateway, project: Uuid) -> i64 {
    let body =
        ok(gateway.get(&format!("/api/v1/projects/{project}")).send().await.expect("sent"), StatusCode::OK).await;
    body["active_memories"].as_i64().expect("count")
}

#[tokio::test]
async fn an_admin_follows_a_dry_run_and_a_real_run_in_the_console_and_rolls_the_job_back() {
    let gateway = TestGateway::start().await;
    let worker = gateway.env.spawn_worker();
    let project = gateway.project().await;
    let loaded =
        consolidator::interchange::import(&gateway.env.db, project, demo::DATA.as_bytes()).await.expect("data");
    let browser = Browser::start().await;
    let client = &browser.client;

    // No token yet: the sign-in form. The token goes in, never into the URL.
    client.goto(&gateway.url("/console")).await.expect("console opens");
    let admin = token(&["*".to_owned()], "admin");
    browser.css("#token").await.send_keys(&admin).await.expect("typed");
    browser.css("#token-form button[type=submit]").await.click().await.expect("signed in");
    let projects = browser.text_until("#projects", |text| text.contains("gateway test")).await;
    assert!(projects.contains(&loaded.to_string()), "the active count is listed: {projects}");
    assert!(!client.current_url().await.expect("url").as_str().contains(&admin), "no token in the URL");
    browser.screenshot("projects").await;

    // The project; its review queue answers with the API's own words when the route is absent.
    browser.css(&format!("a[href='#/projects/{project}']")).await.click().await.expect("project opened");
    browser.css("#trigger-form").await;

    // The form checks an option before the API does, naming it.
    browser.css("#opt-similarity_threshold").await.send_keys("2").await.expect("typed");
    browser.css("#trigger").await.click().await.expect("submitted");
    let refused = browser.text_until("#trigger-result", |text| !text.is_empty()).await;
    assert!(refused.contains("similarity_threshold") && refused.contains("0.99"), "{refused}");
    browser.css("#opt-similarity_threshold").await.clear().await.expect("cleared");

    // A dry run (the form's default), followed live to 100 %.
    browser.css("#trigger").await.click().await.expect("dry run triggered");
    browser.text_until("#trigger-result", |text| text.contains("dry run")).await;
    let dry_run = browser.triggered_job(None).await;
    let row = format!("#jobs tr[data-job='{dry_run}']");
    browser.text_until(&row, |text| text.contains("completed") && text.contains("100%")).await;
    assert_eq!(active_memories(&gateway, project).await, loaded as i64, "a dry run changes nothing");
    let live = client.execute("return Number(document.documentElement.dataset.sseEvents ?? 0)", vec![]).await;
    let live = live.expect("script ran").as_u64().unwrap_or(0);
    assert!(live >= 3, "the progress came from the event stream ({live} events read)");

    // A real run.
    browser.css("#opt-dry_run").await.click().await.expect("dry run off");
    browser.css("#trigger").await.click().await.expect("real run triggered");
    let real_run = browser.triggered_job(Some(dry_run)).await;
    let triggered = browser.css("#trigger-result").await.text().await.expect("text");
    assert!(!triggered.contains("dry run"), "{triggered}");
    let row = format!("#jobs tr[data-job='{real_run}']");
    let row = browser.text_until(&row, |text| text.contains("completed") && text.contains("100%")).await;
    assert!(!row.contains("dry run"), "{row}");
    let after = active_memories(&gateway, project).await;
    assert!(after < loaded as i64, "the job merged and archived: {after} of {loaded} left");
    browser.screenshot("project").await;

    // The playbook holds what the job promoted, each entry with its supporting memories.
    browser.css(&format!("a[href='#/projects/{project}/playbook']")).await.click().await.expect("playbook opened");
    let playbook = browser.text_until("#playbook", |text| text.contains("supporting memories")).await;
    assert!(playbook.contains("priority"), "{playbook}");
    browser.screenshot("playbook").await;
    client.back().await.expect("back to the project");
    browser.css("#trigger-result").await;

    // The job's before/after: a cluster opened from the keyboard shows its members and the merge.
    client.goto(&gateway.url(&format!("/console#/jobs/{real_run}"))).await.expect("job opened");
    browser.css("#clusters details summary").await.send_keys(&Key::Enter.to_string()).await.expect("opened");
    let merged = browser.text_until("#clusters details[open] .merged", |text| !text.is_empty()).await;
    let members = client
        .find_all(Locator::Css("#clusters details[open] section[aria-label=Before] .member"))
        .await
        .expect("members");
    assert!(members.len() >= 2, "{} members beside the merged text", members.len());
    let mut texts = Vec::new();
    for member in &members {
        texts.push(member.text().await.expect("member text").lines().last().unwrap_or_default().to_owned());
    }
    assert!(!merged.is_empty());
    // Each unit of the merged text carries the marks of the members that state it.
    let units = client.find_all(Locator::Css("#clusters details[open] .merged .unit")).await.expect("units");
    assert!(!units.is_empty(), "the merged text is shown unit by unit: {merged}");
    let mut verbatim = 0;
    for unit in &units {
        let marks = unit.find(Locator::Css("sup")).await.expect("marks").text().await.expect("marks");
        let first: usize =
            marks.trim_start_matches('[').split(']').next().and_then(|n| n.parse().ok()).expect("a mark");
        assert!((1..=texts.len()).contains(&first), "mark {marks} names a member");
        let whole = unit.text().await.expect("unit");
        let sentence = whole.trim_end_matches(marks.as_str()).trim();
        verbatim += usize::from(texts[first - 1].contains(sentence));
    }
    assert!(verbatim > 0, "a unit is its member's words: {merged} / {texts:?}");
    browser.text_until("#audit tbody", |text| text.contains("merge") && text.contains("consolidated")).await;
    // The cost report: the phases drawn to scale and the figures beside them.
    let cost = browser.text_until("#cost", |text| text.contains("Planning")).await;
    for label in ["Loading", "Applying", "Memories / s", "Read", "Written", "Model calls"] {
        assert!(cost.contains(label), "{label} in {cost}");
    }
    let phases = client.find_all(Locator::Css("#cost svg.timeline rect")).await.expect("phase bars");
    assert_eq!(phases.len(), 3, "one bar per phase");
    let label = browser.css("#cost svg.timeline").await.attr("aria-label").await.expect("label").unwrap_or_default();
    assert!(label.starts_with("Phases of ") && label.contains("Applying"), "{label}");
    browser.screenshot("job").await;

    // A memory's provenance: the merged memory lists its sources.
    browser.css("#clusters details[open] section[aria-label=After] a").await.click().await.expect("memory opened");
    let provenance = browser.text_until("#provenance", |text| text.contains("Consolidated from")).await;
    assert!(!provenance.lines().nth(1).unwrap_or_default().contains("none"), "{provenance}");
    browser.text_until("#history", |text| text.contains("merge")).await;
    browser.screenshot("memory").await;
    client.back().await.expect("back to the job");

    // Roll back: a reason, a confirmation, and the memories are restored.
    browser.css("button[data-action=rollback]").await.click().await.expect("rollback opened");
    browser.css("input[name=reason]").await.send_keys("trying the console").await.expect("typed");
    browser.css("button[data-action=confirm-rollback]").await.click().await.expect("rollback confirmed");
    browser.text_until("main", |text| text.contains("rolled back")).await;
    assert_eq!(active_memories(&gateway, project).await, loaded as i64, "every memory is back");
    client.goto(&gateway.url(&format!("/console#/projects/{project}"))).await.expect("project again");
    browser.text_until("#active-memories", |text| text == loaded.to_string()).await;
    let reviews = browser.text_until("main", |text| text.contains("Open reviews")).await;
    // The data set's value changes are held back by the value guard as possible updates.
    let open = ok(
        gateway.get(&format!("/api/v1/projects/{project}/reviews?status=open")).send().await.expect("sent"),
        StatusCode::OK,
    )
    .await;
    let open = open["reviews"].as_array().map_or(0, Vec::len);
    if open > 0 {
        assert!(reviews.contains("Approve") && reviews.contains("Reject"), "{open} open: {reviews}");
    } else {
        assert!(reviews.contains("Nothing to review"), "{reviews}");
    }

    browser.stop().await;
    worker.stop().await;
    gateway.stop().await;
}

#[tokio::test]
async fn the_console_is_served_from_the_binary_with_a_strict_content_policy() {
    let gateway = TestGateway::start().await;

    let page = gateway.client.get(gateway.url("/console")).send().await.expect("sent");
    assert_eq!(page.status(), StatusCode::OK);
    let policy = page.headers()["content-security-policy"].to_str().expect("ascii").to_owned();
    assert!(policy.contains("script-src 'self'") && policy.contains("connect-src 'self'"), "{policy}");
    assert!(page.headers()["content-type"].to_str().expect("ascii").starts_with("text/html"));
    let html = page.text().await.expect("body");
    assert!(html.contains("/console/app.js") && !html.contains("http"), "same origin only: {html}");

    let script = gateway.client.get(gateway.url("/console/api.js")).send().await.expect("sent");
    assert!(script.headers()["content-type"].to_str().expect("ascii").starts_with("text/javascript"));
    assert!(script.text().await.expect("body").contains("Authorization"));
    let missing = gateway.client.get(gateway.url("/console/secrets.txt")).send().await.expect("sent");
    let body: Value = missing.json().await.expect("JSON error");
    assert_eq!(body["error"], "not_found", "{body}");
    gateway.stop().await;
}

/// Whether the gateway serves a route: one it does not answers 404 "no route for ...".
async fn served(gateway: &TestGateway, method: reqwest::Method, path: &str) -> bool {
    let response = gateway.request(method, path).send().await.expect("sent");
    if response.status() != StatusCode::NOT_FOUND && response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return true;
    }
    let body: Value = response.json().await.unwrap_or_default();
    !body["message"].as_str().unwrap_or_default().starts_with("no route")
}

impl Browser {
    /// Scrolls the element into view (a screenshot holds the window only).
    async fn scroll_to(&self, selector: &str) {
        self.css(selector).await;
        let script = "document.querySelector(arguments[0]).scrollIntoView({block: 'start'}); window.scrollBy(0, -8)";
        self.client.execute(script, vec![json!(selector)]).await.expect("scrolled");
    }

    /// How many elements match `selector` now.
    async fn count(&self, selector: &str) -> usize {
        self.client.find_all(Locator::Css(selector)).await.map_or(0, |found| found.len())
    }

    /// Waits for the "not available on this gateway" note naming `route` (a route not served).
    async fn unavailable(&self, route: &str) -> String {
        self.text_until(&format!("[data-unavailable*='{route}']"), |text| text.contains("Not available")).await
    }
}

async fn job_status(gateway: &TestGateway, job: &str) -> Value {
    ok(gateway.get(&format!("/api/v1/consolidation/status/{job}")).send().await.expect("sent"), StatusCode::OK).await
}

async fn finished(gateway: &TestGateway, job: &str) -> Value {
    eventually(WAIT * 2, || async {
        let status = job_status(gateway, job).await;
        ["completed", "failed"].contains(&status["status"].as_str().unwrap_or_default()).then_some(status)
    })
    .await
    .expect("the job finished")
}

async fn open_reviews(gateway: &TestGateway, project: Uuid) -> usize {
    let path = format!("/api/v1/projects/{project}/reviews?status=open&limit=200");
    let body = ok(gateway.get(&path).send().await.expect("sent"), StatusCode::OK).await;
    body["reviews"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn an_operator_judges_reviews_reads_health_and_timelines_and_applies_plans_in_the_console() {
    use reqwest::Method;
    let gateway = TestGateway::start().await;
    let worker = gateway.env.spawn_worker();
    let project = gateway.project().await;
    consolidator::interchange::import(&gateway.env.db, project, demo::DATA.as_bytes()).await.expect("data");
    // A job that failed, for the failed filter and the failures by cause.
    let failed =
        finished_job(&gateway, project, consolidator::store::jobs::TriggerType::Manual, false, Value::Null).await;
    let browser = Browser::start().await;
    let client = &browser.client;
    client.goto(&gateway.url("/console")).await.expect("console opens");
    browser.css("#token").await.send_keys(&token(&["*".to_owned()], "admin")).await.expect("typed");
    browser.css("#token-form button[type=submit]").await.click().await.expect("signed in");
    browser.text_until("#projects", |text| text.contains("gateway test")).await;

    // The trigger form offers every option, the blast-radius limit and the value guard among them.
    client.goto(&gateway.url(&format!("/console#/projects/{project}"))).await.expect("project opened");
    browser.css("#trigger-form").await;
    browser.css("#opt-max_changed_share").await;
    let guard = browser.css("#opt-value_guard").await;
    guard.select_by_value("review").await.expect("value guard chosen");

    // A dry run from the form; its page offers to apply exactly its plan.
    browser.css("#trigger").await.click().await.expect("dry run triggered");
    let dry_run = browser.triggered_job(None).await;
    finished(&gateway, &dry_run.to_string()).await;
    client.goto(&gateway.url(&format!("/console#/jobs/{dry_run}"))).await.expect("dry run opened");
    browser.css("#clusters").await;
    browser.css("button[data-action=apply-plan]").await.click().await.expect("apply clicked");
    let applies = served(&gateway, Method::POST, &format!("/api/v1/consolidation/jobs/{}/apply", Uuid::new_v4())).await;
    let real_run = if applies {
        let link = browser.css("#applied-job").await.attr("href").await.expect("href").unwrap_or_default();
        let job = link.trim_start_matches("#/jobs/").to_owned();
        let status = finished(&gateway, &job).await;
        assert_eq!(status["status"], "completed", "{status}");
        assert_eq!(status["result"]["applied_plan"]["dry_run_id"], dry_run.to_string(), "{status}");
        client.goto(&gateway.url(&format!("/console#/jobs/{job}"))).await.expect("applied job opened");
        browser.text_until("#applied-plan", |text| text.contains(&dry_run.to_string()[..8])).await;
        job
    } else {
        browser.unavailable("POST /consolidation/jobs/{id}/apply").await;
        let accepted = gateway
            .post(
                "/api/v1/consolidation/trigger",
                &json!({"project_id": project, "options": {"value_guard": "review"}}),
            )
            .send()
            .await
            .expect("sent");
        let job = ok(accepted, StatusCode::ACCEPTED).await["job_id"].as_str().expect("job id").to_owned();
        assert_eq!(finished(&gateway, &job).await["status"], "completed");
        job
    };

    // The job's timeline: its phases drawn to scale, its attempts, worker and events.
    client.goto(&gateway.url(&format!("/console#/jobs/{real_run}"))).await.expect("job opened");
    browser.css("#clusters").await;
    let timeline = browser.text_until("#timeline", |text| text.contains("Attempt")).await;
    assert!(browser.count("#timeline svg.timeline rect").await >= 3, "phases drawn: {timeline}");
    if served(&gateway, Method::GET, &format!("/api/v1/consolidation/jobs/{real_run}/timeline")).await {
        let events = browser.text_until("#job-events", |text| text.contains("completed")).await;
        assert!(events.contains("started") || events.contains("progress"), "{events}");
        assert!(timeline.contains("Worker"), "{timeline}");
    } else {
        browser.unavailable("GET /consolidation/jobs/{id}/timeline").await;
    }
    browser.scroll_to("#timeline").await;
    browser.screenshot("timeline").await;

    // Before/after: sorted by length against the longest source, flagged, each row previewed.
    let status = job_status(&gateway, &real_run).await;
    let merges = status["result"]["merges"].as_array().cloned().unwrap_or_default();
    assert!(merges.len() > 2, "the job merged: {status}");
    let longest = merges.iter().filter_map(|m| m["length_vs_longest"].as_f64()).fold(0.0, f64::max);
    browser.css("#cluster-order").await.select_by_value("length").await.expect("sorted");
    let first = browser.text_until("#clusters details summary", |text| text.contains("length vs longest")).await;
    assert!(first.contains(&format!("length vs longest {longest:.2}")), "longest first ({longest:.2}): {first}");
    let previews = client.find_all(Locator::Css("#clusters .preview")).await.expect("previews");
    assert_eq!(previews.len(), merges.len(), "one preview a row");
    assert!(!previews[0].text().await.expect("preview").trim().is_empty(), "the row previews its merged text");
    let flagged = merges
        .iter()
        .filter(|m| m["length_vs_longest"].as_f64().unwrap_or(0.0) > 1.5 || m["coverage"].as_f64().unwrap_or(1.0) < 1.0)
        .count();
    browser.css("#flagged-only").await.click().await.expect("flagged only");
    assert_eq!(browser.count("#clusters details").await, flagged, "flagged only");
    browser.css("#flagged-only").await.click().await.expect("every cluster");
    // The syntheses' text.
    let syntheses = status["result"]["syntheses"].as_array().map_or(0, Vec::len);
    if syntheses > 0 {
        browser.text_until(".synthesis-text", |text| !text.trim().is_empty()).await;
    }
    browser.scroll_to("#clusters-heading").await;
    browser.css("#clusters details summary").await.click().await.expect("cluster opened");
    browser.css("#clusters details[open] section[aria-label=After] .merged").await;
    browser.screenshot("clusters").await;

    // Unmerge the opened cluster: its sources are active again.
    browser.css("#clusters details[open] button[data-action=unmerge]").await.click().await.expect("unmerge opened");
    browser.css("#clusters details[open] button[data-action=confirm-unmerge]").await.click().await.expect("confirmed");
    let unmerged = browser.text_until("#clusters details[open] .success", |text| text.contains("Unmerged")).await;
    let merged_id = merges
        .iter()
        .find(|m| m["length_vs_longest"].as_f64() == Some(longest))
        .and_then(|m| m["memory_id"].as_str())
        .expect("the longest merge's memory");
    let memory =
        ok(gateway.get(&format!("/api/v1/memories/{merged_id}")).send().await.expect("sent"), StatusCode::OK).await;
    assert_eq!(memory["is_archived"], true, "{unmerged}: {memory}");

    // The project's page: pause and resume, health over time, reviews side by side.
    client.goto(&gateway.url(&format!("/console#/projects/{project}"))).await.expect("project opened");
    browser.css("#pause-toggle").await.click().await.expect("paused");
    browser.text_until("#consolidation-state", |text| text == "paused").await;
    let configuration = ok(
        gateway.get(&format!("/api/v1/consolidation/configure/{project}")).send().await.expect("sent"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(configuration["enabled"], false);
    browser.css("#pause-toggle").await.click().await.expect("resumed");
    browser.text_until("#consolidation-state", |text| text == "enabled").await;
    if served(&gateway, Method::GET, &format!("/api/v1/projects/{project}/timeline")).await {
        browser.css("#store-chart svg").await;
        assert_eq!(browser.count("#store-chart svg path").await, 3, "active, duplicate and archived");
        assert!(browser.count("#durations-chart svg rect.bar").await >= 2, "the jobs' durations");
        let failures = browser.text_until("#failures", |text| text.contains("it broke")).await;
        assert!(failures.contains(&failed.id.to_string()[..8]), "{failures}");
        browser.scroll_to("#health").await;
        browser.screenshot("health").await;
    } else {
        browser.unavailable("GET /projects/{id}/timeline").await;
    }

    // The failed filter lists the failed job alone, with its error.
    browser.css("#jobs-status").await.select_by_value("failed").await.expect("failed chosen");
    eventually(WAIT, || async { (browser.count("#jobs tbody tr").await == 1).then_some(()) })
        .await
        .expect("the failed job alone");
    browser.text_until("#jobs tbody", |text| text.contains("it broke")).await;
    browser.css("#jobs-status").await.select_by_value("").await.expect("all jobs again");
    // Searched by a job-id prefix: that job alone.
    let prefix = &failed.id.to_string()[..8];
    browser.css("#jobs-search").await.send_keys(prefix).await.expect("typed");
    browser.css("#jobs-filter button[type=submit]").await.click().await.expect("searched");
    eventually(WAIT, || async { (browser.count("#jobs tbody tr").await == 1).then_some(()) })
        .await
        .expect("one job found");
    browser.text_until("#jobs tbody", |text| text.contains(prefix)).await;
    browser.css("#jobs-search").await.clear().await.expect("cleared");
    browser.css("#jobs-filter button[type=submit]").await.click().await.expect("every job");

    // Reviews: both texts side by side, the differing values marked.
    let open = open_reviews(&gateway, project).await;
    assert!(open >= 2, "the value guard queued possible updates: {open}");
    browser.text_until("#reviews", |text| text.contains("Older") && text.contains("Newer")).await;
    let review = browser.css("#reviews li.review").await;
    for side in ["Older", "Newer"] {
        let section = review.find(Locator::Css(&format!("section[aria-label={side}]"))).await.expect("a side");
        let text = section.find(Locator::Css(".text")).await.expect("its text").text().await.expect("text");
        assert!(!text.trim().is_empty(), "{side} text shown");
        let meta = section.text().await.expect("meta");
        assert!(meta.contains("reused") && meta.contains("ago"), "{meta}");
        let marked = browser.count(&format!("#reviews section[aria-label={side}] .text mark.value")).await;
        assert!(marked > 0, "{side}: the differing values are marked in the texts");
    }
    browser.scroll_to("#review-queue").await;
    browser.screenshot("reviews").await;
    // One review rejected from its row.
    review.find(Locator::Css("button[data-action=reject]")).await.expect("reject").click().await.expect("rejected");
    eventually(WAIT, || async { (open_reviews(&gateway, project).await == open - 1).then_some(()) })
        .await
        .expect("one review settled");
    // The list drawn again without it (its buttons are new ones).
    eventually(WAIT, || async { (browser.count("#reviews li.review").await == open - 1).then_some(()) })
        .await
        .expect("the list redrawn");
    // Every other one by filter, after a preview of how many.
    browser.css("#settle-preview").await.click().await.expect("preview");
    if served(&gateway, Method::POST, &format!("/api/v1/projects/{}/reviews/settle", Uuid::new_v4())).await {
        let preview = browser.text_until("#settle-matching", |text| text.contains("match")).await;
        assert!(preview.contains(&format!("{} open review", open - 1)), "{preview}");
        assert_eq!(open_reviews(&gateway, project).await, open - 1, "a preview settles nothing");
        browser.css("button[data-action=settle-approve]").await.click().await.expect("approve all");
        browser.text_until("#review-queue", |text| text.contains("Nothing to review")).await;
        assert_eq!(open_reviews(&gateway, project).await, 0);
    } else {
        browser.unavailable("POST /projects/{id}/reviews/settle").await;
    }

    // The landing page: the projects needing attention.
    client.goto(&gateway.url("/console#/")).await.expect("landing");
    if served(&gateway, Method::GET, "/api/v1/attention").await {
        let attention = browser.text_until("#attention", |text| text.contains("gateway test")).await;
        assert!(attention.contains("failed jobs"), "the failed job needs attention: {attention}");
    } else {
        browser.unavailable("GET /attention").await;
    }
    browser.screenshot("attention").await;

    // The audit of admin actions: the applied plan, the rejection, the unmerge and the pause with
    // before and after.
    client.goto(&gateway.url("/console#/audit")).await.expect("audit");
    if served(&gateway, Method::GET, "/api/v1/audit").await {
        let audit = browser.text_until("#audit-actions", |text| text.contains("unmerge")).await;
        assert!(audit.contains("review rejected") && audit.contains("configuration changed"), "{audit}");
        assert!(!applies || audit.contains("plan applied"), "the applied plan is an admin action: {audit}");
        browser.css("#audit-actions tr[data-action=configuration_changed] del").await;
        browser.screenshot("audit").await;
    } else {
        browser.unavailable("GET /audit").await;
    }

    // The workers: heartbeats and running jobs, the command stream, the dead letters.
    client.goto(&gateway.url("/console#/workers")).await.expect("workers");
    if served(&gateway, Method::GET, "/api/v1/workers").await {
        browser.text_until("#commands", |text| text.contains("Commands pending")).await;
        browser.css("#workers tbody tr").await;
        browser.css("#dead-letters, #no-dead-letters").await;
        browser.screenshot("workers").await;
    } else {
        browser.unavailable("GET /workers").await;
    }

    browser.stop().await;
    worker.stop().await;
    gateway.stop().await;
}
