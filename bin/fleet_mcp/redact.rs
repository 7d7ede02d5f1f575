//! The redaction point of fleet-mcp's protocol channel: every message the server sends (tool
//! results, errors, progress and log notifications) passes through [`Redacting`], on stdio and
//! on each HTTP session ([`RedactingSessions`]), and leaves with every configured token
//! replaced by `<redacted>`. Redaction works on the message's JSON value before it is
//! serialized, so no escaping can hide a token.

use futures::future::Either;
use rmcp::{
    RoleServer,
    model::{ClientJsonRpcMessage, ErrorData, JsonRpcMessage, ServerJsonRpcMessage},
    service::{RxJsonRpcMessage, TxJsonRpcMessage},
    transport::{
        Transport,
        streamable_http_server::{
            SessionManager,
            session::{EventStore, RestoreOutcome, ServerSseMessage, SessionId},
        },
    },
};

use crate::safe_text::with_redactor;

/// `message` with every token redacted. A message that held a token but cannot be rebuilt
/// exactly without it is withheld: a response becomes an error response, anything else is
/// dropped (`None`).
pub fn redact_message(message: ServerJsonRpcMessage) -> Option<ServerJsonRpcMessage> {
    // The request an answer is for (an error may name none).
    let answers = match &message {
        JsonRpcMessage::Response(r) => Some(Some(r.id.clone())),
        JsonRpcMessage::Error(e) => Some(e.id.clone()),
        _ => None,
    };
    match with_redactor(|r| r.redact_serde(message)) {
        Some(clean) => Some(clean),
        None => {
            tracing::warn!("a message to the client held a token and was withheld");
            answers.map(|id| {
                ServerJsonRpcMessage::error(
                    ErrorData::internal_error("the answer held a token and was withheld", None),
                    id,
                )
            })
        }
    }
}

/// A transport whose outgoing messages are redacted.
pub struct Redacting<T>(pub T);

impl<T: Transport<RoleServer>> Transport<RoleServer> for Redacting<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        match redact_message(item) {
            Some(clean) => Either::Left(self.0.send(clean)),
            None => Either::Right(std::future::ready(Ok(()))),
        }
    }

    fn receive(&mut self) -> impl Future<Output = Option<RxJsonRpcMessage<RoleServer>>> + Send {
        self.0.receive()
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.0.close()
    }
}

/// A session manager whose sessions' transports are [`Redacting`] (shared, so the HTTP layer
/// can read the manager's own counters too).
pub struct RedactingSessions<M>(pub std::sync::Arc<M>);

impl<M: SessionManager> SessionManager for RedactingSessions<M> {
    type Error = M::Error;
    type Transport = Redacting<M::Transport>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let (id, transport) = self.0.create_session().await?;
        Ok((id, Redacting(transport)))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        let answer = self.0.initialize_session(id, message).await?;
        Ok(with_redactor(|r| r.redact_serde(answer.clone())).unwrap_or(answer))
    }

    fn has_session(
        &self,
        id: &SessionId,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send {
        self.0.has_session(id)
    }

    fn close_session(
        &self,
        id: &SessionId,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.0.close_session(id)
    }

    fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> impl Future<
        Output = Result<
            impl futures::Stream<Item = ServerSseMessage> + Send + Sync + 'static,
            Self::Error,
        >,
    > + Send {
        self.0.create_stream(id, message)
    }

    fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.0.accept_message(id, message)
    }

    fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> impl Future<
        Output = Result<
            impl futures::Stream<Item = ServerSseMessage> + Send + Sync + 'static,
            Self::Error,
        >,
    > + Send {
        self.0.create_standalone_stream(id)
    }

    fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> impl Future<
        Output = Result<
            impl futures::Stream<Item = ServerSseMessage> + Send + Sync + 'static,
            Self::Error,
        >,
    > + Send {
        self.0.resume(id, last_event_id)
    }

    async fn restore_session(
        &self,
        id: SessionId,
    ) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        Ok(match self.0.restore_session(id).await? {
            RestoreOutcome::Restored(t) => RestoreOutcome::Restored(Redacting(t)),
            RestoreOutcome::AlreadyPresent => RestoreOutcome::AlreadyPresent,
            _ => RestoreOutcome::NotSupported,
        })
    }

    fn event_store(&self) -> Option<std::sync::Arc<dyn EventStore>> {
        self.0.event_store()
    }
}
