//! Publishing a command whose row the request has just written.

use std::future::Future;

use serde::Serialize;

use crate::bus::{Bus, BusError, CommandKind};

/// Publishes `command` and, when that fails, runs `record_failure` with the reason, in a task of
/// its own: a request that times out or whose client goes away mid-publish (a publish may take
/// its whole retry budget) never leaves the row half-way, pending with nobody to publish it.
pub async fn publish_recorded<T, R, RFut>(
    bus: &Bus,
    kind: CommandKind,
    idempotency_key: String,
    command: T,
    record_failure: R,
) -> Result<(), BusError>
where
    T: Serialize + Send + Sync + 'static,
    R: FnOnce(String) -> RFut + Send + 'static,
    RFut: Future<Output = ()> + Send + 'static,
{
    let subject = bus.prefix.command(kind);
    let bus = bus.clone();
    let published = tokio::spawn(async move {
        let published = bus.publish_command(kind, &idempotency_key, &command).await;
        if let Err(error) = &published {
            record_failure(format!("the {} command could not be published: {error}", kind.as_str())).await;
        }
        published.map(|_| ())
    });
    match published.await {
        Ok(published) => published,
        Err(error) => Err(BusError::Publish { subject, message: error.to_string() }),
    }
}
