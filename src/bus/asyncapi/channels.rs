//! Every channel of the bus: its address (built by the same `Prefix` methods the code publishes
//! with), its message, its `Nats-Msg-Id` rule, and who sends and receives it.

use uuid::Uuid;

use crate::{
    bus::CommandKind,
    domain::{JobEventKind, Prefix, RollbackEventKind},
};

/// Who takes part: the three processes of this service, and the world around them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Gateway,
    Worker,
    Scheduler,
    /// A service that writes memories or drives jobs (a task runner, an agent platform).
    OutsideService,
    /// Dashboards, alerting, `consolidator watch` and `demo`, any service following events.
    Subscriber,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Gateway, Role::Worker, Role::Scheduler, Role::OutsideService, Role::Subscriber];

    pub fn tag(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Worker => "worker",
            Role::Scheduler => "scheduler",
            Role::OutsideService => "outside_service",
            Role::Subscriber => "subscriber",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Role::Gateway => "`consolidator gateway`: the HTTP API",
            Role::Worker => "`consolidator worker`: runs jobs, rollbacks, checks, sweeps, cancels and unmerges",
            Role::Scheduler => "`consolidator scheduler`: publishes the scheduled sweep and runs maintenance",
            Role::OutsideService => {
                "Any other service (a task runner, an agent platform); deploy/nats.conf's `outside publisher` \
                 user may publish only `trigger` and `check` (subjects.md, Permissions)"
            }
            Role::Subscriber => "Read-only followers: dashboards, alerting, `consolidator watch` and `demo`",
        }
    }
}

/// Which stream keeps a channel's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Commands,
    Events,
    /// Not kept in a stream of this service (a JetStream advisory).
    None,
}

/// The `Nats-Msg-Id` a publisher sets, if any.
#[derive(Debug, Clone, Copy)]
pub struct MessageId {
    pub required: bool,
    pub description: &'static str,
}

/// One parameter of a channel's address: one subject token.
#[derive(Debug, Clone)]
pub struct Parameter {
    pub name: &'static str,
    pub description: &'static str,
    /// The values it may take, when closed.
    pub values: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Channel {
    pub id: &'static str,
    pub address: String,
    pub title: &'static str,
    pub description: &'static str,
    pub parameters: Vec<Parameter>,
    /// The message type's schema name (also the message's name).
    pub message: &'static str,
    pub message_id: Option<MessageId>,
    pub stream: Stream,
    pub senders: Vec<Role>,
    pub receivers: Vec<Role>,
    /// The worker's durable consumer, for a command channel.
    pub consumer: Option<CommandKind>,
}

/// A placeholder for a subject token, as AsyncAPI writes it: `{name}`.
fn token(name: &str) -> String {
    format!("{{{name}}}")
}

fn id_parameter(name: &'static str, description: &'static str) -> Parameter {
    Parameter { name, description, values: Vec::new() }
}

fn names<const N: usize>(values: [&'static str; N]) -> Vec<String> {
    values.iter().map(|value| (*value).to_owned()).collect()
}

/// Replaces the placeholder uuids of an address built by a `Prefix` method with named tokens.
fn parameterised(address: String, ids: &[(Uuid, &str)]) -> String {
    ids.iter().fold(address, |address, (id, name)| address.replace(&id.to_string(), &token(name)))
}

/// The address with its last token replaced by the parameter `name`.
fn last_token_named(address: String, name: &str) -> String {
    match address.rsplit_once('.') {
        Some((head, _)) => format!("{head}.{}", token(name)),
        None => token(name),
    }
}

/// Two distinct stand-in ids, replaced by their parameter names once the address is built.
const FIRST: Uuid = Uuid::from_u128(1);
const SECOND: Uuid = Uuid::from_u128(2);

fn command(prefix: &Prefix, kind: CommandKind) -> Channel {
    use Role::*;
    let (id, title, description, message, message_id, senders) = match kind {
        CommandKind::Trigger => (
            "trigger",
            "Run a consolidation job",
            "A publisher other than the gateway may skip writing the job row: the worker creates it.",
            "TriggerCommand",
            MessageId {
                required: true,
                description: "The job id; the scheduler's maintenance re-publishes a stranded job under \
                              `<job_id>:republished:<uuid>`",
            },
            vec![Gateway, Worker, Scheduler, OutsideService],
        ),
        CommandKind::Rollback => (
            "rollback",
            "Undo a completed job",
            "Refused (an event, not an error) when a rule forbids it; `cascade` rolls back later jobs first.",
            "RollbackCommand",
            MessageId {
                required: true,
                description: "The rollback id (`<rollback_id>:republished:<uuid>` when maintenance re-publishes it)",
            },
            vec![Gateway, Scheduler, OutsideService],
        ),
        CommandKind::Sweep => (
            "sweep",
            "The scheduled fan-out",
            "One per schedule tick: every scheduler replica publishes it, the duplicate window keeps one.",
            "SweepCommand",
            MessageId { required: true, description: "`sweep:<tick token>`, the tick written `20261122T020000Z`" },
            vec![Scheduler],
        ),
        CommandKind::Check => (
            "check",
            "A task just finished",
            "Starts a `threshold` job when the project is over its threshold and idle.",
            "CheckCommand",
            MessageId {
                required: false,
                description: "Any unique id (e.g. the finished task's); the job's id is derived from it \
                              (without it: from the stream sequence)",
            },
            vec![OutsideService],
        ),
        CommandKind::Cancel => (
            "cancel",
            "Stop a job at its next phase boundary",
            "A pending job ends `cancelled` at once; a running one before its commit.",
            "CancelCommand",
            MessageId { required: false, description: "Any unique id" },
            vec![OutsideService],
        ),
        CommandKind::Unmerge => (
            "unmerge",
            "Take one consolidated memory apart",
            "Its sources are active again; its members stay apart in later jobs.",
            "UnmergeCommand",
            MessageId { required: true, description: "`unmerge:<memory_id>` (a memory is unmerged once)" },
            vec![OutsideService],
        ),
    };
    Channel {
        id,
        address: prefix.command(kind),
        title,
        description,
        parameters: Vec::new(),
        message,
        message_id: Some(message_id),
        stream: Stream::Commands,
        senders,
        receivers: vec![Worker],
        consumer: Some(kind),
    }
}

fn events(prefix: &Prefix) -> Vec<Channel> {
    use Role::*;
    let job = parameterised(
        last_token_named(prefix.job_event(FIRST, SECOND, JobEventKind::Queued), "kind"),
        &[(FIRST, "project_id"), (SECOND, "job_id")],
    );
    let rollback = parameterised(
        last_token_named(prefix.rollback_event(FIRST, SECOND, RollbackEventKind::Completed), "kind"),
        &[(FIRST, "project_id"), (SECOND, "rollback_id")],
    );
    let unmerged =
        parameterised(prefix.memory_unmerged(FIRST, SECOND), &[(FIRST, "project_id"), (SECOND, "memory_id")]);
    let sweep = prefix
        .sweep_completed(chrono::DateTime::UNIX_EPOCH)
        .replace(&crate::bus::messages::tick_token(chrono::DateTime::UNIX_EPOCH), &token("tick"));
    let dead_letter = prefix.dead_letter(&token("command"));
    let project = || id_parameter("project_id", "The project's id");
    vec![
        Channel {
            id: "jobEvents",
            address: job,
            title: "A job's life",
            description: "Terminal kinds (`completed`, `failed`, `cancelled`, `rolled_back`) carry a message id, \
                          so a re-publication after a redelivery is dropped. The gateway publishes `queued` for \
                          the jobs it creates and `cancelled` for a pending job it cancels; the scheduler's \
                          maintenance publishes `failed` for a job it fails as abandoned.",
            parameters: vec![
                project(),
                id_parameter("job_id", "The job's id"),
                Parameter { name: "kind", description: "The event's kind", values: names(JobEventKind::NAMES) },
            ],
            message: "JobEvent",
            message_id: Some(MessageId {
                required: false,
                description: "`<job_id>.<kind>` on terminal events; absent on `queued`, `started` and `progress`",
            }),
            stream: Stream::Events,
            senders: vec![Worker, Gateway, Scheduler],
            receivers: vec![Gateway, Subscriber],
            consumer: None,
        },
        Channel {
            id: "rollbackEvents",
            address: rollback,
            title: "A rollback's outcome",
            description: "For an unknown job, `project_id` in the subject is the nil uuid.",
            parameters: vec![
                project(),
                id_parameter("rollback_id", "The rollback's id"),
                Parameter { name: "kind", description: "The outcome", values: names(RollbackEventKind::NAMES) },
            ],
            message: "RollbackEvent",
            message_id: Some(MessageId { required: true, description: "`<rollback_id>.<kind>`" }),
            stream: Stream::Events,
            senders: vec![Worker],
            receivers: vec![Gateway, Subscriber],
            consumer: None,
        },
        Channel {
            id: "memoryUnmerged",
            address: unmerged,
            title: "A consolidated memory taken apart",
            description: "Once per memory, whether the worker (`cmd.unmerge`) or the gateway \
                          (`POST /memories/{id}/unmerge`) did it.",
            parameters: vec![project(), id_parameter("memory_id", "The consolidated memory's id")],
            message: "UnmergeEvent",
            message_id: Some(MessageId { required: true, description: "`unmerged.<memory_id>`" }),
            stream: Stream::Events,
            senders: vec![Worker, Gateway],
            receivers: vec![Subscriber],
            consumer: None,
        },
        Channel {
            id: "sweepCompleted",
            address: sweep,
            title: "A sweep's summary",
            description: "Published when the sweep's last job ends (by the worker that sees it, or by the \
                          scheduler's maintenance when it failed that job).",
            parameters: vec![id_parameter("tick", "The sweep's tick, written `20261122T020000Z`")],
            message: "SweepSummary",
            message_id: Some(MessageId { required: true, description: "`sweep:<tick token>.completed`" }),
            stream: Stream::Events,
            senders: vec![Worker, Scheduler],
            receivers: vec![Subscriber],
            consumer: None,
        },
        Channel {
            id: "deadLetters",
            address: dead_letter,
            title: "A command that can never succeed",
            description: "The original payload (cut to fit the server's message limit, with its size and \
                          SHA-256) and the reason; the command is then terminated.",
            parameters: vec![Parameter {
                name: "command",
                description: "The command's kind",
                values: CommandKind::ALL.iter().map(|kind| kind.as_str().to_owned()).collect(),
            }],
            message: "DeadLetter",
            message_id: None,
            stream: Stream::Events,
            senders: vec![Worker],
            receivers: vec![Subscriber],
            consumer: None,
        },
    ]
}

/// JetStream's advisory that a command consumer stopped redelivering a message: the server
/// publishes it, one worker of the queue group dead-letters the message.
fn max_deliveries(prefix: &Prefix) -> Channel {
    Channel {
        id: "maxDeliveriesAdvisory",
        address: last_token_named(prefix.max_deliveries_advisories(), "consumer"),
        title: "JetStream gave up on a command",
        description: "Published by the NATS server (`io.nats.jetstream.advisory.v1.max_deliver`) when a command \
                      consumer reaches its max deliver; the worker that gets it publishes the dead letter, fails \
                      the job or rollback the command names and deletes the message.",
        parameters: vec![Parameter {
            name: "consumer",
            description: "The durable consumer that gave up",
            values: CommandKind::ALL.iter().map(|kind| prefix.consumer(*kind)).collect(),
        }],
        message: super::schemas::ADVISORY,
        message_id: None,
        stream: Stream::None,
        senders: Vec::new(),
        receivers: vec![Role::Worker],
        consumer: None,
    }
}

/// The subjects of the bus, commands first.
pub fn channels(prefix: &Prefix) -> Vec<Channel> {
    let mut channels: Vec<Channel> = CommandKind::ALL.into_iter().map(|kind| command(prefix, kind)).collect();
    channels.extend(events(prefix));
    channels.push(max_deliveries(prefix));
    channels
}
