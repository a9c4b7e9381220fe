//! A lean NIP-01 reading session for bulk archiving: one WebSocket, one REQ at a time, every
//! EVENT handed back unverified with its frame size (the caller verifies in parallel and counts
//! what it drops), NIP-42 AUTH answered when keys are given, and NIP-77 negentropy to list the
//! ids of a filter beyond any `limit`. Every wait is bounded by the caller's timeout (only a
//! valid message counts as an answer: invalid frames neither extend it nor go on for ever, see
//! [`MAX_INVALID_FRAMES`]) and every response by a maximum event count and [`Bounds`] in bytes.
//!
//! nostr-sdk's client verifies and deduplicates events on its own task and drops invalid ones
//! without telling the caller, which makes per-relay rejection counts impossible and keeps
//! signature checks on one core; this session keeps the protocol parsing of rust-nostr
//! (`RelayMessage`, `ClientMessage`, `EventBuilder::auth`) and leaves those decisions to the
//! caller.

use std::borrow::Cow;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use negentropy::{Id, Negentropy, NegentropyStorageVector};
use nostr_sdk::prelude::{
    ClientMessage, EventBuilder, EventId, Filter, JsonUtil, Keys, RelayMessage, RelayUrl,
    SubscriptionId,
};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::transport::{HandshakeHeaders, RawSocket};

/// Largest negentropy frame we send (the relay answers in frames of its own choosing).
const NEGENTROPY_FRAME_LIMIT: u64 = 60_000;

/// Invalid frames (not a NIP-01 relay message: not JSON, unknown arrays, binary noise) one
/// request may receive before the relay is failed; they never count as an answer.
pub const MAX_INVALID_FRAMES: usize = 64;

/// NIP-42 AUTH events one session signs and sends at most. One answers the challenge a relay
/// sends on connection (or after an `auth-required:` refusal); the second covers a relay that
/// rotates its challenge once. A challenge beyond the bound is left unanswered, and a request
/// waiting for AUTH then fails at once with [`SessionError::AuthLimit`]: a relay that answers
/// every AUTH with a new challenge costs two signatures, not a signature per round trip.
pub const MAX_AUTH_PER_SESSION: usize = 2;

/// Byte bounds of a session's responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// EVENT frames longer than this are dropped unparsed and counted as
    /// [`Response::oversized`] (`None`: only the transport's frame bound applies).
    pub max_event_frame: Option<usize>,
    /// Most bytes of EVENT frames one response may hold; beyond it the request fails with
    /// [`SessionError::TooLarge`].
    pub max_response_bytes: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            max_event_frame: None,
            max_response_bytes: usize::MAX,
        }
    }
}

/// Why a session request failed. Each is a recorded failure of the relay, never fatal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Nothing arrived within the wait.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection broke or was closed.
    #[error("connection lost: {0}")]
    Connection(String),
    /// The relay closed the subscription for a reason other than AUTH.
    #[error("subscription closed by the relay: {0}")]
    Closed(String),
    /// The relay requires AUTH and no keys are configured.
    #[error("the relay requires NIP-42 AUTH and no keys are configured")]
    AuthRequired,
    /// The relay refused our AUTH event, or asked again after accepting it.
    #[error("NIP-42 AUTH failed: {0}")]
    AuthRejected(String),
    /// The relay kept asking for AUTH after [`MAX_AUTH_PER_SESSION`] AUTH events.
    #[error("NIP-42 AUTH: the relay asked again after {0} AUTH events")]
    AuthLimit(usize),
    /// The relay refused the request with `auth-required:` and did not answer our AUTH within
    /// the wait (it did respond: this is not a [`SessionError::Timeout`]).
    #[error("NIP-42 AUTH: the relay required it and did not answer ours in time")]
    AuthUnanswered,
    /// The relay sent more events than allowed for one request.
    #[error("more than {0} events in one response")]
    Flood(usize),
    /// A negentropy message could not be decoded or reconciled.
    #[error("negentropy: {0}")]
    Negentropy(String),
    /// The relay sent more than [`MAX_INVALID_FRAMES`] invalid frames for one request.
    #[error("more than {0} invalid frames for one request")]
    InvalidFrames(usize),
    /// The events of one response took more than [`Bounds::max_response_bytes`].
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
}

impl SessionError {
    /// A short, bounded name for counting failures by reason.
    pub fn reason(&self) -> &'static str {
        match self {
            SessionError::Timeout(_) => "timeout",
            SessionError::Connection(_) => "connection",
            SessionError::Closed(_) => "closed",
            SessionError::AuthRequired
            | SessionError::AuthRejected(_)
            | SessionError::AuthLimit(_)
            | SessionError::AuthUnanswered => "auth",
            SessionError::Flood(_) => "flood",
            SessionError::Negentropy(_) => "negentropy",
            SessionError::InvalidFrames(_) => "invalid_frames",
            SessionError::TooLarge(_) => "too_large",
        }
    }
}

/// An event as received: parsed, not yet verified.
#[derive(Debug, Clone)]
pub struct Received {
    /// The event, exactly as the relay sent it.
    pub event: nostr_sdk::Event,
    /// Size in bytes of the WebSocket message that carried it.
    pub frame_len: usize,
}

/// The answer to one REQ.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// Events in the order they arrived (duplicates included).
    pub events: Vec<Received>,
    /// EVENT messages for this subscription that were not valid event JSON.
    pub malformed: usize,
    /// EVENT frames longer than [`Bounds::max_event_frame`], dropped unparsed.
    pub oversized: usize,
    /// Bytes of the EVENT frames kept in `events`.
    pub bytes: usize,
}

/// One open reading session.
#[derive(Debug)]
pub struct Session {
    socket: RawSocket,
    url: RelayUrl,
    keys: Option<Keys>,
    challenge: Option<String>,
    /// The id of the AUTH event sent and not yet acknowledged.
    pending_auth: Option<EventId>,
    authenticated: bool,
    /// AUTH events sent on this session (at most [`MAX_AUTH_PER_SESSION`]).
    auth_sent: usize,
    /// A challenge arrived after the last AUTH the bound allowed; it stays unanswered.
    auth_exhausted: bool,
    /// Waiting for the relay to accept our AUTH after an `auth-required:` refusal (a timeout
    /// then is [`SessionError::AuthUnanswered`]).
    authenticating: bool,
    next_subscription: u64,
    insecure: bool,
    headers: HandshakeHeaders,
    bounds: Bounds,
    /// Invalid frames received for the current request.
    invalid_frames: usize,
}

/// The relay's answer to an EVENT we sent (NIP-01 `OK`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Whether the relay accepted the event.
    pub accepted: bool,
    /// The relay's message (`auth-required: ...`, `restricted: ...`, `pow: ...`, or free text).
    pub message: String,
    /// Whether the relay asked for NIP-42 AUTH before it answered.
    pub auth_requested: bool,
}

impl Session {
    pub(crate) fn new(socket: RawSocket, url: RelayUrl, keys: Option<Keys>) -> Self {
        Self {
            socket,
            url,
            keys,
            challenge: None,
            pending_auth: None,
            authenticated: false,
            auth_sent: 0,
            auth_exhausted: false,
            authenticating: false,
            next_subscription: 0,
            insecure: false,
            headers: HandshakeHeaders::default(),
            bounds: Bounds::default(),
            invalid_frames: 0,
        }
    }

    /// Bounds every later response in bytes.
    pub fn set_bounds(&mut self, bounds: Bounds) {
        self.bounds = bounds;
    }

    pub(crate) fn with_headers(mut self, headers: HandshakeHeaders) -> Self {
        self.headers = headers;
        self
    }

    /// The identifying headers of the WebSocket handshake response.
    pub fn handshake_headers(&self) -> &HandshakeHeaders {
        &self.headers
    }

    /// Whether the relay sent a NIP-42 challenge on this connection.
    pub fn challenged(&self) -> bool {
        self.challenge.is_some()
    }

    pub(crate) fn set_insecure(&mut self, insecure: bool) {
        self.insecure = insecure;
    }

    /// Whether the connection had to skip certificate verification.
    pub fn insecure(&self) -> bool {
        self.insecure
    }

    /// Whether the relay accepted our NIP-42 AUTH.
    pub fn authenticated(&self) -> bool {
        self.authenticated
    }

    /// NIP-42 AUTH events sent on this session.
    pub fn auth_sent(&self) -> usize {
        self.auth_sent
    }

    fn subscription(&mut self, prefix: &str) -> SubscriptionId {
        self.next_subscription += 1;
        SubscriptionId::new(format!("{prefix}{}", self.next_subscription))
    }

    async fn send(&mut self, message: ClientMessage<'_>) -> Result<(), SessionError> {
        self.socket
            .send(Message::Text(message.as_json().into()))
            .await
            .map_err(|e| SessionError::Connection(e.to_string()))
    }

    /// Counts one invalid frame of the current request; too many fail it.
    fn invalid_frame(&mut self) -> Result<(), SessionError> {
        self.invalid_frames += 1;
        if self.invalid_frames > MAX_INVALID_FRAMES {
            return Err(SessionError::InvalidFrames(MAX_INVALID_FRAMES));
        }
        Ok(())
    }

    /// The next text message before `deadline` (a timeout reports `wait`, the caller's bound).
    /// Binary frames that are not UTF-8 are invalid frames.
    async fn next_text(
        &mut self,
        deadline: Instant,
        wait: Duration,
    ) -> Result<Utf8Bytes, SessionError> {
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .map_err(|_| SessionError::Timeout(wait))?;
            match message {
                Some(Ok(Message::Text(text))) => return Ok(text),
                Some(Ok(Message::Binary(bytes))) => match Utf8Bytes::try_from(bytes) {
                    Ok(text) => return Ok(text),
                    Err(_) => self.invalid_frame()?,
                },
                Some(Ok(Message::Close(frame))) => {
                    let reason = frame.map_or_else(String::new, |f| f.reason.to_string());
                    return Err(SessionError::Connection(format!(
                        "closed by the relay {reason}"
                    )));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(SessionError::Connection(e.to_string())),
                None => return Err(SessionError::Connection("end of stream".to_owned())),
            }
        }
    }

    /// Handles the messages any request may see: AUTH challenges and the OK of our AUTH.
    /// Returns true when the message was consumed.
    async fn handle_common(&mut self, message: &RelayMessage<'_>) -> Result<bool, SessionError> {
        match message {
            RelayMessage::Auth { challenge } => {
                self.challenge = Some(challenge.to_string());
                self.authenticated = false;
                if self.keys.is_some() {
                    self.send_auth().await?;
                }
                Ok(true)
            }
            RelayMessage::Ok {
                event_id,
                status,
                message,
            } if Some(*event_id) == self.pending_auth => {
                self.pending_auth = None;
                if !status {
                    return Err(SessionError::AuthRejected(message.to_string()));
                }
                self.authenticated = true;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Answers the current challenge, unless [`MAX_AUTH_PER_SESSION`] AUTH events were sent
    /// already (then the challenge stays unanswered and the session remembers it).
    async fn send_auth(&mut self) -> Result<(), SessionError> {
        let (Some(keys), Some(challenge)) = (&self.keys, &self.challenge) else {
            return Ok(());
        };
        if self.auth_sent >= MAX_AUTH_PER_SESSION {
            // A new challenge invalidates the AUTH sent for the previous one.
            self.pending_auth = None;
            self.auth_exhausted = true;
            return Ok(());
        }
        self.auth_sent += 1;
        let event = EventBuilder::auth(challenge.clone(), self.url.clone())
            .sign_with_keys(keys)
            .map_err(|e| SessionError::AuthRejected(format!("cannot sign AUTH: {e}")))?;
        self.pending_auth = Some(event.id);
        self.send(ClientMessage::auth(event)).await
    }

    /// Authenticates after an `auth-required:` refusal, until `deadline`; a timeout is
    /// [`SessionError::AuthUnanswered`] (the relay did answer, with the refusal).
    async fn authenticate(
        &mut self,
        deadline: Instant,
        wait: Duration,
    ) -> Result<(), SessionError> {
        if self.keys.is_none() {
            return Err(SessionError::AuthRequired);
        }
        // Stays set if a caller's outer timeout drops this future (see `timed_out`).
        self.authenticating = true;
        let result = self.await_authentication(deadline, wait).await;
        self.authenticating = false;
        result
    }

    async fn await_authentication(
        &mut self,
        deadline: Instant,
        wait: Duration,
    ) -> Result<(), SessionError> {
        if self.pending_auth.is_none() && !self.authenticated {
            self.send_auth().await?;
        }
        while !self.authenticated {
            if self.auth_exhausted {
                return Err(SessionError::AuthLimit(MAX_AUTH_PER_SESSION));
            }
            let text = match self.next_text(deadline, wait).await {
                Err(SessionError::Timeout(_)) => return Err(SessionError::AuthUnanswered),
                other => other?,
            };
            match RelayMessage::from_json(text.as_str()) {
                Ok(message) => {
                    self.handle_common(&message).await?;
                }
                Err(_) => self.invalid_frame()?,
            }
        }
        Ok(())
    }

    /// The error of a request whose whole-request bound `wait` ran out: a timeout, unless the
    /// relay had refused it with `auth-required:` and the session was waiting for its AUTH.
    fn timed_out(&mut self, wait: Duration) -> SessionError {
        if std::mem::take(&mut self.authenticating) {
            SessionError::AuthUnanswered
        } else {
            SessionError::Timeout(wait)
        }
    }

    /// Sends one REQ for `filter` and collects its stored events until EOSE, then CLOSEs it.
    /// `wait` bounds the wait for each message; more than `max_events` events is a
    /// [`SessionError::Flood`]. A CLOSED `auth-required:` is answered with AUTH (when keys are
    /// configured) and the REQ is sent once more.
    pub async fn query(
        &mut self,
        filter: &Filter,
        wait: Duration,
        max_events: usize,
    ) -> Result<Response, SessionError> {
        self.collect(filter, wait, max_events, false).await
    }

    /// The REQ of [`Session::query`]; with `first_only`, it returns (and CLOSEs) at the first
    /// event of the subscription.
    async fn collect(
        &mut self,
        filter: &Filter,
        wait: Duration,
        max_events: usize,
        first_only: bool,
    ) -> Result<Response, SessionError> {
        let mut auth_retried = false;
        self.invalid_frames = 0;
        self.authenticating = false;
        'request: loop {
            let id = self.subscription("s");
            self.send(ClientMessage::req(id.clone(), vec![filter.clone()]))
                .await?;
            let mut response = Response::default();
            // Only a valid message for this session moves the deadline.
            let mut deadline = Instant::now() + wait;
            loop {
                let text = self.next_text(deadline, wait).await?;
                if let Some(max) = self.bounds.max_event_frame
                    && text.len() > max
                {
                    // Dropped before parsing: only the start of the frame is looked at.
                    if starts_as_event_for(text.as_str(), &id) {
                        check_count(&response, max_events)?;
                        response.oversized += 1;
                        deadline = Instant::now() + wait;
                    } else {
                        self.invalid_frame()?;
                    }
                    continue;
                }
                let message = match RelayMessage::from_json(text.as_str()) {
                    Ok(message) => message,
                    Err(_) => {
                        if is_event_for(text.as_str(), &id) {
                            check_count(&response, max_events)?;
                            response.malformed += 1;
                            deadline = Instant::now() + wait;
                        } else {
                            self.invalid_frame()?;
                        }
                        continue;
                    }
                };
                deadline = Instant::now() + wait;
                if self.handle_common(&message).await? {
                    continue;
                }
                match message {
                    RelayMessage::Event {
                        subscription_id,
                        event,
                    } if *subscription_id == id => {
                        if let Err(e) = check_count(&response, max_events) {
                            let _ = self.send(ClientMessage::close(id)).await;
                            return Err(e);
                        }
                        response.bytes += text.len();
                        if response.bytes > self.bounds.max_response_bytes {
                            let _ = self.send(ClientMessage::close(id)).await;
                            return Err(SessionError::TooLarge(self.bounds.max_response_bytes));
                        }
                        response.events.push(Received {
                            event: event.into_owned(),
                            frame_len: text.len(),
                        });
                        if first_only {
                            let _ = self.send(ClientMessage::close(id)).await;
                            return Ok(response);
                        }
                    }
                    RelayMessage::EndOfStoredEvents(subscription_id) if *subscription_id == id => {
                        self.send(ClientMessage::close(id)).await?;
                        return Ok(response);
                    }
                    RelayMessage::Closed {
                        subscription_id,
                        message,
                    } if *subscription_id == id => {
                        if message.starts_with("auth-required:") && !auth_retried {
                            auth_retried = true;
                            self.authenticate(Instant::now() + wait, wait).await?;
                            continue 'request;
                        }
                        if message.starts_with("auth-required:") {
                            return Err(SessionError::AuthRejected(message.to_string()));
                        }
                        return Err(SessionError::Closed(message.to_string()));
                    }
                    _ => {}
                }
            }
        }
    }

    /// Sends `event` and waits at most `wait` in total for the relay's `OK` (sending included).
    /// An `auth-required:` refusal is answered with AUTH (when keys are configured) and the event
    /// is sent once more.
    pub async fn publish(
        &mut self,
        event: &nostr_sdk::Event,
        wait: Duration,
    ) -> Result<Published, SessionError> {
        let deadline = Instant::now() + wait;
        match tokio::time::timeout_at(deadline, self.publish_until(event, deadline, wait)).await {
            Ok(result) => result,
            Err(_) => Err(self.timed_out(wait)),
        }
    }

    /// [`Session::publish`] until `deadline`; `wait` is the caller's bound, the one a timeout
    /// reports.
    async fn publish_until(
        &mut self,
        event: &nostr_sdk::Event,
        deadline: Instant,
        wait: Duration,
    ) -> Result<Published, SessionError> {
        let mut auth_retried = false;
        let mut auth_requested = false;
        self.invalid_frames = 0;
        self.authenticating = false;
        'send: loop {
            self.send(ClientMessage::event(event.clone())).await?;
            loop {
                let text = self.next_text(deadline, wait).await?;
                let Ok(message) = RelayMessage::from_json(text.as_str()) else {
                    self.invalid_frame()?;
                    continue;
                };
                if self.handle_common(&message).await? {
                    continue;
                }
                if let RelayMessage::Ok {
                    event_id,
                    status,
                    message,
                } = message
                    && event_id == event.id
                {
                    let message = message.to_string();
                    if !status && message.starts_with("auth-required:") {
                        auth_requested = true;
                        if !auth_retried && self.keys.is_some() {
                            auth_retried = true;
                            self.authenticate(deadline, wait).await?;
                            continue 'send;
                        }
                    }
                    return Ok(Published {
                        accepted: status,
                        message,
                        auth_requested,
                    });
                }
            }
        }
    }

    /// Sends one REQ for `filter` and returns as soon as its first event arrives (`Some`, then
    /// CLOSE) or its EOSE (`None`), within `wait` in total (not per message: a relay that
    /// trickles notices cannot stretch it). AUTH is handled as in [`Session::query`].
    pub async fn first_event(
        &mut self,
        filter: &Filter,
        wait: Duration,
    ) -> Result<Option<Received>, SessionError> {
        let response = match tokio::time::timeout(wait, self.collect(filter, wait, 1, true)).await {
            Ok(result) => result?,
            Err(_) => return Err(self.timed_out(wait)),
        };
        Ok(response.events.into_iter().next())
    }

    /// Lists the ids of every event matching `filter` with NIP-77 negentropy (no `limit`
    /// applies), reconciling against an empty set. `Ok(None)` when the relay does not speak
    /// NIP-77 (NEG-ERR, NOTICE, CLOSED, or silence for `wait`). At most `max_ids` ids.
    pub async fn negentropy_ids(
        &mut self,
        filter: &Filter,
        wait: Duration,
        max_ids: usize,
    ) -> Result<Option<Vec<[u8; 32]>>, SessionError> {
        let mut storage = NegentropyStorageVector::new();
        let negentropy_error = |e: negentropy::Error| SessionError::Negentropy(e.to_string());
        storage.seal().map_err(negentropy_error)?;
        let mut negentropy =
            Negentropy::owned(storage, NEGENTROPY_FRAME_LIMIT).map_err(negentropy_error)?;
        let initial = negentropy.initiate().map_err(negentropy_error)?;
        let id = self.subscription("n");
        self.send(ClientMessage::neg_open(
            id.clone(),
            filter.clone(),
            hex::encode(initial),
        ))
        .await?;
        let mut have: Vec<Id> = Vec::new();
        let mut need: Vec<Id> = Vec::new();
        self.invalid_frames = 0;
        let mut deadline = Instant::now() + wait;
        loop {
            let text = match self.next_text(deadline, wait).await {
                Ok(text) => text,
                Err(SessionError::Timeout(_)) => return Ok(None),
                Err(e) => return Err(e),
            };
            let Ok(message) = RelayMessage::from_json(text.as_str()) else {
                self.invalid_frame()?;
                continue;
            };
            deadline = Instant::now() + wait;
            if self.handle_common(&message).await? {
                continue;
            }
            match message {
                RelayMessage::NegMsg {
                    subscription_id,
                    message,
                } if *subscription_id == id => {
                    let bytes = hex::decode(message.as_ref())
                        .map_err(|e| SessionError::Negentropy(e.to_string()))?;
                    let next = negentropy
                        .reconcile_with_ids(&bytes, &mut have, &mut need)
                        .map_err(negentropy_error)?;
                    if need.len() > max_ids {
                        let _ = self.close_negentropy(id).await;
                        return Err(SessionError::Flood(max_ids));
                    }
                    match next {
                        Some(next) => {
                            self.send(ClientMessage::NegMsg {
                                subscription_id: Cow::Owned(id.clone()),
                                message: Cow::Owned(hex::encode(next)),
                            })
                            .await?;
                        }
                        None => {
                            self.close_negentropy(id).await?;
                            return Ok(Some(need.iter().map(|id| **id).collect()));
                        }
                    }
                }
                RelayMessage::NegErr {
                    subscription_id, ..
                } if *subscription_id == id => return Ok(None),
                RelayMessage::Closed {
                    subscription_id, ..
                } if *subscription_id == id => return Ok(None),
                RelayMessage::Notice(_) => return Ok(None),
                _ => {}
            }
        }
    }

    async fn close_negentropy(&mut self, id: SubscriptionId) -> Result<(), SessionError> {
        self.send(ClientMessage::NegClose {
            subscription_id: Cow::Owned(id),
        })
        .await
    }

    /// Closes the WebSocket (best effort, bounded).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.socket.close(None)).await;
    }
}

/// Fails a response that already holds `max_events` events (valid, malformed or oversized).
fn check_count(response: &Response, max_events: usize) -> Result<(), SessionError> {
    if response.events.len() + response.malformed + response.oversized >= max_events {
        return Err(SessionError::Flood(max_events));
    }
    Ok(())
}

/// Whether an (oversized) frame starts as an EVENT message for subscription `id`: only its
/// first bytes are read.
fn starts_as_event_for(text: &str, id: &SubscriptionId) -> bool {
    let head: String = text
        .chars()
        .take(64 + id.as_str().len())
        .filter(|c| !c.is_whitespace())
        .collect();
    head.starts_with(&format!("[\"EVENT\",\"{}\",", id.as_str()))
}

/// Whether `text` looks like an EVENT message for subscription `id` (for counting malformed
/// events without parsing them).
fn is_event_for(text: &str, id: &SubscriptionId) -> bool {
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(text)
    else {
        return false;
    };
    items.first().and_then(|v| v.as_str()) == Some("EVENT")
        && items.get(1).and_then(|v| v.as_str()) == Some(id.as_str())
}
