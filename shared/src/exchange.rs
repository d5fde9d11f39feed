//! One delivery, end to end, as a state machine every host drives.
//!
//! ```text
//!   source(peer)?          (optional: before any header is read)
//!        │
//!   head(head, declared)  ──► Answer (refused) │ PassThrough (shadow, too large) │ Read
//!        │ Read: remove these headers now
//!   body(received, end)*  ──► Answer (413) │ PassThrough (shadow, too large) │ More │ Complete
//!        │                     (body_unreadable(why) when the stream breaks off: 400)
//!        │ Complete
//!   finish(body, now)     ──► Answer (refused, 204) │ Forward │ Admit (dedup)
//!        │ Admit: look the event id up in storage
//!   admit(token, found)   ──► Answer (duplicate, in flight) │ Forward
//!        │ Forward / PassThrough: send it on
//!   origin_answered(status) or origin_unreachable(why)  ──► what dedup records
//! ```
//!
//! `host_error(what)` answers 500 from any step before the origin answered. Once a
//! delivery is answered, or forwarded and the origin answered, every call is a no-op
//! ([`Head::Done`], [`Body::Done`], [`Decision::Done`], `None`): a host can call on
//! from each callback without tracking it. A call out of order (the body before the
//! head) fails closed: it answers 500 `host_error`.
//!
//! Every answer and forward carries its [`Report`]s (counters, log lines) and its
//! filter state: a host spells no verdict, mode, counter name or error body itself.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;
use core::borrow::Borrow;

use crate::address::ClientAddress;
use crate::config::{Mode, Policy};
use crate::dedup::{self, Admission, Claim, DedupSettings, SlotStore};
use crate::delivery::{
    DECISION_HEADER, Forward, Metadata, Outcome, Pending, Reply, RequestHead, Verdict,
};
use crate::rejection::{ErrorCode, Rejection};
use crate::report::{self, Event, Report, STATE_DECISION, STATE_STRIPPED};

/// The detail of a host error reply: what failed stays in the host's log.
const HOST_ERROR_DETAIL: &str = "see the proxy log";
/// The detail of a 502: why the origin could not be reached stays in the log (it may
/// name internal hosts).
const ORIGIN_UNREACHABLE_DETAIL: &str = "the origin could not be reached; Persona will retry";

/// One delivery. `P` is how the host holds the configuration: `&Policy`, `Rc<Policy>`,
/// `Arc<Policy>`. Every call of one exchange sees the same policy.
#[derive(Debug)]
pub struct Exchange<P> {
    policy: P,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Nothing decided: the head is next.
    Head,
    /// The head passed: the body is being read.
    Body(Pending),
    /// A forward is waiting for its duplicate-suppression admission.
    Admitting,
    /// Forwarded: the origin's answer is next (`Tracked`: what to settle then).
    Forwarded(Option<Tracked>),
    /// Answered, or forwarded and answered by the origin.
    Done,
}

/// A forwarded event that duplicate suppression follows until the origin answers.
#[derive(Clone, Debug)]
struct Tracked {
    event_id: String,
    /// Enforce mode: the claim to settle. Shadow mode: none (a success is recorded).
    claim: Option<Claim>,
}

impl Tracked {
    fn settle(self, succeeded: bool) -> Option<Settlement> {
        match self.claim {
            Some(claim) => Some(Settlement::Claimed {
                event_id: self.event_id,
                claim,
                succeeded,
            }),
            None => succeeded.then_some(Settlement::Delivered {
                event_id: self.event_id,
            }),
        }
    }
}

/// After [`Exchange::head`].
#[derive(Debug)]
pub enum Head {
    /// Read the body. Remove these request headers (lower-case names) from the
    /// forwarded request; a host that can change request headers only now (proxy-wasm)
    /// removes them now. They are also in [`Forwarding::remove_headers`].
    Read { remove_headers: Vec<String> },
    /// Send this answer; forward nothing.
    Answer(Answer),
    /// Shadow mode, the declared length past the limit: forward the request as it
    /// comes, without buffering the body.
    PassThrough(Forwarding<'static>),
    /// Already decided: let the request pass as the earlier step said.
    Done,
}

/// After [`Exchange::body`].
#[derive(Debug)]
pub enum Body {
    /// Keep buffering.
    More,
    /// The whole body is here: call [`Exchange::finish`] with it.
    Complete,
    /// Send this answer (413 in enforce mode); forward nothing.
    Answer(Answer),
    /// Shadow mode, past the limit: stop buffering and forward the rest as it comes.
    PassThrough(Forwarding<'static>),
    /// Already decided.
    Done,
}

/// After [`Exchange::finish`] and [`Exchange::admit`].
#[derive(Debug)]
pub enum Decision<'b> {
    /// Forward it.
    Forward(Forwarding<'b>),
    /// Send this answer; forward nothing.
    Answer(Answer),
    /// Duplicate suppression: look [`Admit::event_id`] up in the host's storage, then
    /// hand the token and what was found to [`Exchange::admit`]. Only with a `dedup`
    /// section: a host whose configurations have none never sees it.
    Admit(Admit<'b>),
    /// Already decided.
    Done,
}

impl<P: Borrow<Policy>> Exchange<P> {
    pub fn new(policy: P) -> Self {
        Exchange {
            policy,
            state: State::Head,
        }
    }

    pub fn policy(&self) -> &Policy {
        self.policy.borrow()
    }

    /// Whether the client address is the connection's peer: the host passes it to
    /// [`Exchange::source`] and in [`RequestHead::peer`]. Otherwise it comes from a
    /// header and the host need not look the peer up.
    pub fn wants_peer(&self) -> bool {
        *self.policy().client_address() == ClientAddress::Peer
    }

    /// Whether the exchange has nothing more to do: answered, or forwarded and the
    /// origin answered.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Optional first step, for a host that can answer before it reads the headers:
    /// the source check alone, from the peer address. It applies only in enforce
    /// mode with the peer as the client address (otherwise `None`, and
    /// [`Exchange::head`] decides); a flood from outside the allowlist then costs one
    /// address lookup and the answer. [`Exchange::head`] checks the source again,
    /// first, so this only answers sooner, never otherwise.
    pub fn source(&mut self, peer: Option<&str>) -> Option<Answer> {
        let policy: &Policy = self.policy.borrow();
        if !matches!(self.state, State::Head)
            || policy.mode() != Mode::Enforce
            || *policy.client_address() != ClientAddress::Peer
        {
            return None;
        }
        let rejection = policy.check_source(&[], peer).err()?;
        self.state = State::Done;
        Some(Answer::rejected(Some(Mode::Enforce), rejection))
    }

    /// The request line and headers: source, method, content type and encoding. A
    /// `declared_length` (the request's Content-Length, see
    /// [`RequestHead::content_length`]) past the limit is decided now, before a byte of
    /// the body is read; pass `None` when the host cannot answer before the body.
    pub fn head(&mut self, head: &RequestHead<'_>, declared_length: Option<usize>) -> Head {
        match self.state {
            State::Head => {}
            State::Done | State::Forwarded(_) => return Head::Done,
            State::Body(_) | State::Admitting => {
                return Head::Answer(self.misuse("the host gave the request head twice"));
            }
        }
        let policy: &Policy = self.policy.borrow();
        let pending = match policy.check_head(head) {
            Ok(pending) => pending,
            Err(rejection) => {
                self.state = State::Done;
                return Head::Answer(Answer::rejected(Some(policy.mode()), rejection));
            }
        };
        match declared_length.map(|length| Self::size(policy, &pending, length)) {
            Some(Size::Refused(answer)) => {
                self.state = State::Done;
                Head::Answer(answer)
            }
            Some(Size::PassThrough(forwarding)) => {
                self.state = State::Forwarded(None);
                Head::PassThrough(forwarding)
            }
            Some(Size::Within) | None => {
                let remove_headers = pending.remove_headers().to_vec();
                self.state = State::Body(pending);
                Head::Read { remove_headers }
            }
        }
    }

    /// While the body arrives: `received` bytes so far in all, `end_of_stream` when
    /// they are all of it. Past `limits.max_body_bytes` enforce mode answers 413 at
    /// once and shadow mode passes the rest through unbuffered.
    pub fn body(&mut self, received: usize, end_of_stream: bool) -> Body {
        let pending = match &self.state {
            State::Body(pending) => pending,
            State::Head => {
                return Body::Answer(self.misuse("the host gave the body before the head"));
            }
            State::Admitting | State::Forwarded(_) | State::Done => return Body::Done,
        };
        let policy: &Policy = self.policy.borrow();
        match Self::size(policy, pending, received) {
            Size::Refused(answer) => {
                self.state = State::Done;
                Body::Answer(answer)
            }
            Size::PassThrough(forwarding) => {
                self.state = State::Forwarded(None);
                Body::PassThrough(forwarding)
            }
            Size::Within if end_of_stream => Body::Complete,
            Size::Within => Body::More,
        }
    }

    /// The body could not be read to its end (`why`: the host's reason, such as a
    /// stream that broke off): refused 400 `invalid_json` in both modes, since there is
    /// no whole body to verify or to forward. `None` unless the body was being read.
    pub fn body_unreadable(&mut self, why: &str) -> Option<Answer> {
        if !matches!(self.state, State::Body(_)) {
            return None;
        }
        self.state = State::Done;
        let mut detail = String::from("the body could not be read to its end (");
        detail.push_str(why);
        detail.push(')');
        Some(Answer::rejected(
            Some(self.policy().mode()),
            Rejection::new(ErrorCode::InvalidJson, detail),
        ))
    }

    /// The complete body (empty for a request without one): signature, JSON and
    /// envelope, event filter, blocklist, inflection. `now` is the time in Unix seconds.
    pub fn finish<'b>(&mut self, body: &'b [u8], now: u64) -> Decision<'b> {
        let pending = match core::mem::replace(&mut self.state, State::Done) {
            State::Body(pending) => pending,
            State::Head => {
                return Decision::Answer(self.misuse("the host gave the body before the head"));
            }
            other => {
                self.state = other;
                return Decision::Done;
            }
        };
        let policy: &Policy = self.policy.borrow();
        let mode = policy.mode();
        let forward = match policy.process_body(&pending, body, now) {
            Outcome::Forward(forward) => forward,
            Outcome::Acknowledge(metadata) => {
                return Decision::Answer(Answer::acknowledged(mode, metadata));
            }
            Outcome::Reject(rejection) => {
                return Decision::Answer(Answer::rejected(Some(mode), rejection));
            }
        };
        let forwarding = Forwarding {
            forward,
            pass_through: false,
            remove_headers: pending.remove_headers().to_vec(),
            mode,
            held: None,
        };
        let settings = policy.dedup().copied();
        let known = forwarding.forward.metadata.is_some();
        match settings {
            // Only a delivery enforce mode forwards is looked up (in shadow mode, one
            // it would forward), and only by an id the envelope gave.
            Some(settings) if forwarding.forward.verdict == Verdict::Forward && known => {
                self.state = State::Admitting;
                Decision::Admit(Admit {
                    forwarding,
                    settings,
                    now,
                })
            }
            _ => {
                self.state = State::Forwarded(None);
                Decision::Forward(forwarding)
            }
        }
    }

    /// Duplicate suppression's answer for `token`: what the storage said
    /// ([`Admit::admit_slots`] for a slot table), or `None` when it could not be asked
    /// (the delivery is forwarded: a duplicate may get through, none is held up).
    /// Enforce mode answers a duplicate (200) or an attempt in flight (409) at the
    /// edge; shadow mode forwards and reports what it would have answered. Hand the
    /// admission back before anything else: a claim the storage took is released only
    /// through the settlement this exchange gives later.
    pub fn admit<'b>(&mut self, token: Admit<'b>, found: Option<Admission>) -> Decision<'b> {
        match self.state {
            State::Admitting => {}
            State::Done | State::Forwarded(_) => return Decision::Done,
            State::Head | State::Body(_) => {
                return Decision::Answer(
                    self.misuse("the host gave an admission for another delivery"),
                );
            }
        }
        let Admit {
            mut forwarding,
            settings: _,
            now: _,
        } = token;
        let event_id = String::from(forwarding.event_id());
        let Some(admission) = found else {
            self.state = State::Forwarded(None);
            return Decision::Forward(forwarding);
        };
        match (forwarding.mode, admission) {
            (Mode::Enforce, Admission::Forward { claim }) => {
                self.state = State::Forwarded(Some(Tracked {
                    event_id,
                    claim: Some(claim),
                }));
                Decision::Forward(forwarding)
            }
            (Mode::Enforce, held) => {
                self.state = State::Done;
                let metadata = forwarding.forward.metadata.take();
                Decision::Answer(Answer::deduplicated(held, metadata, &event_id))
            }
            (Mode::Shadow, admission) => {
                if !matches!(admission, Admission::Forward { .. }) {
                    forwarding.hold(admission);
                }
                self.state = State::Forwarded(Some(Tracked {
                    event_id,
                    claim: None,
                }));
                Decision::Forward(forwarding)
            }
        }
    }

    /// The origin answered a forwarded delivery with `status`. With duplicate
    /// suppression, what to record (see [`Settlement`]); `None` when there is nothing.
    pub fn origin_answered(&mut self, status: u16) -> Option<Settlement> {
        match core::mem::replace(&mut self.state, State::Done) {
            State::Forwarded(tracked) => tracked?.settle(dedup::origin_succeeded(status)),
            other => {
                self.state = other;
                None
            }
        }
    }

    /// The origin could not be reached (`why`, for the log only): the 502 answer
    /// (Persona retries), in both modes. `None` unless a forward was under way.
    pub fn origin_unreachable(&mut self, why: &str) -> Option<Answer> {
        match core::mem::replace(&mut self.state, State::Done) {
            State::Forwarded(tracked) => {
                let mut answer = Answer::rejected(
                    Some(self.policy().mode()),
                    Rejection::new(ErrorCode::OriginUnreachable, ORIGIN_UNREACHABLE_DETAIL),
                );
                answer.origin_error = Some(String::from(why));
                answer.settlement = tracked.and_then(|t| t.settle(false));
                Some(answer)
            }
            other => {
                self.state = other;
                None
            }
        }
    }

    /// A host call failed (`what`, for the log only): the 500 `host_error` answer, so
    /// the delivery fails closed. From any step until the origin answered (a claim
    /// taken for it is then released: [`Answer::settlement`]); `None` after.
    pub fn host_error(&mut self, what: &str) -> Option<Answer> {
        let tracked = match core::mem::replace(&mut self.state, State::Done) {
            State::Done => return None,
            State::Forwarded(tracked) => tracked,
            State::Head | State::Body(_) | State::Admitting => None,
        };
        let mut answer = Answer::host_error(self.policy().mode(), what);
        answer.settlement = tracked.and_then(|t| t.settle(false));
        Some(answer)
    }

    /// A call out of order: the host's bug, answered as a host error (fail closed).
    fn misuse(&mut self, what: &str) -> Answer {
        self.state = State::Done;
        Answer::host_error(self.policy().mode(), what)
    }

    /// Where `received` bytes stand against the limit.
    fn size(policy: &Policy, pending: &Pending, received: usize) -> Size {
        match policy.check_body_size(received) {
            Err(rejection) => Size::Refused(Answer::rejected(Some(policy.mode()), rejection)),
            // Shadow mode lets any size through, but a host must not buffer it: the
            // rest goes on as it comes, with the decision enforce mode would have
            // taken (the head's refusal first, as `process_body` reports it).
            Ok(()) if received > policy.max_body_bytes() => {
                let code = pending
                    .shadow_rejection()
                    .map_or(ErrorCode::BodyTooLarge, |r| r.code);
                Size::PassThrough(Forwarding::pass_through(Verdict::Reject(code)))
            }
            Ok(()) => Size::Within,
        }
    }
}

enum Size {
    Within,
    Refused(Answer),
    PassThrough(Forwarding<'static>),
}

// ---------------------------------------------------------------------------
// Forwarding

/// A delivery that goes on to the origin, and what to report about it.
#[derive(Clone, Debug)]
pub struct Forwarding<'b> {
    forward: Forward<'b>,
    /// Shadow mode past the limit: the body was not read; the original goes on.
    pass_through: bool,
    remove_headers: Vec<String>,
    mode: Mode,
    /// Shadow mode: the answer duplicate suppression would have given.
    held: Option<Admission>,
}

impl<'b> Forwarding<'b> {
    fn pass_through(would: Verdict) -> Forwarding<'static> {
        Forwarding {
            forward: Forward {
                body: Cow::Borrowed(&[]),
                metadata: None,
                stripped: 0,
                verdict: would,
                routing_headers: false,
                other_headers: alloc::vec![(DECISION_HEADER, String::from(would.as_str()))],
            },
            pass_through: true,
            remove_headers: Vec::new(),
            mode: Mode::Shadow,
            held: None,
        }
    }

    /// Shadow mode: the decision header says what duplicate suppression would have
    /// answered instead of `forward`.
    fn hold(&mut self, admission: Admission) {
        self.held = Some(admission);
        for (name, value) in &mut self.forward.other_headers {
            if *name == DECISION_HEADER {
                *value = String::from(admission.as_str());
            }
        }
    }

    /// The body to send: `None` for a pass-through (shadow mode past the limit), where
    /// the original goes on as it arrives.
    pub fn body(&self) -> Option<&[u8]> {
        (!self.pass_through).then_some(self.forward.body.as_ref())
    }

    /// The body to send when it differs from the one received: a host that buffered
    /// the original replaces it with this (and fixes its framing).
    pub fn changed_body(&self) -> Option<&[u8]> {
        match &self.forward.body {
            Cow::Owned(body) => Some(body),
            Cow::Borrowed(_) => None,
        }
    }

    /// The body to send, owned or borrowed from the one received (empty for a
    /// pass-through).
    pub fn into_body(self) -> Cow<'b, [u8]> {
        self.forward.body
    }

    /// Headers to set on the forwarded request: the routing headers, the re-signed
    /// `persona-signature`, or in shadow mode the decision.
    pub fn set_headers(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.forward.set_headers()
    }

    /// Request headers (lower-case names) to remove: client-supplied `x-persona-*`,
    /// and `persona-signature` and `content-length` when the configuration can change
    /// bodies. Empty in shadow mode, which forwards the original.
    pub fn remove_headers(&self) -> &[String] {
        &self.remove_headers
    }

    /// The routing metadata, when the envelope was read.
    pub fn metadata(&self) -> Option<&Metadata> {
        self.forward.metadata.as_ref()
    }

    /// How many attributes the blocklist removed (0 in shadow mode).
    pub fn stripped(&self) -> usize {
        self.forward.stripped
    }

    /// `Forward` in enforce mode; in shadow mode, what enforce mode would have done.
    pub fn verdict(&self) -> Verdict {
        self.forward.verdict
    }

    /// The decision as filter state and the decision header spell it: the verdict's,
    /// or in shadow mode the answer duplicate suppression would have given.
    pub fn decision(&self) -> &'static str {
        match self.held {
            Some(admission) => admission.as_str(),
            None => self.forward.verdict.as_str(),
        }
    }

    /// What to report: the forward (enforce) or the would-be decision (shadow), then
    /// in shadow mode the answer duplicate suppression would have given.
    pub fn reports(&self) -> impl Iterator<Item = Report<'_>> {
        let metadata = self.forward.metadata.as_ref();
        let main = match self.mode {
            Mode::Enforce => Event::Forwarded {
                metadata,
                stripped: self.forward.stripped,
            },
            Mode::Shadow => Event::Shadowed {
                would: self.forward.verdict,
                metadata,
            },
        };
        let held = self.held.map(|admission| Event::Deduplicated {
            admission,
            event_id: self.event_id(),
        });
        let mode = Some(self.mode);
        core::iter::once(main)
            .chain(held)
            .map(move |event| Report { mode, event })
    }

    /// The filter state: the routing metadata when known, the decision, the number of
    /// stripped attributes (enforce mode), then `persona_header.<name>` for each header
    /// to set. Each pair is handed to `set` without copying the values.
    pub fn filter_state(&self, set: &mut dyn FnMut(&str, &str)) {
        if let Some(m) = &self.forward.metadata {
            report::metadata_state(m, set);
        }
        set(STATE_DECISION, self.decision());
        if self.mode == Mode::Enforce {
            set(STATE_STRIPPED, &itoa(self.forward.stripped));
        }
        report::header_state(self.set_headers(), set);
    }

    fn event_id(&self) -> &str {
        self.forward
            .metadata
            .as_ref()
            .map_or("", |m| m.event_id.as_str())
    }
}

/// A number as decimal text (filter state values are text).
fn itoa(n: usize) -> String {
    use core::fmt::Write;
    let mut out = String::new();
    let _ = write!(out, "{n}");
    out
}

// ---------------------------------------------------------------------------
// Answers

/// A reply the sender gets instead of a forward, and what to report about it.
#[derive(Clone, Debug)]
pub struct Answer {
    reply: Reply,
    mode: Option<Mode>,
    why: Why,
    /// Why the origin could not be reached, for the log (a 502 answer).
    origin_error: Option<String>,
    settlement: Option<Settlement>,
}

#[derive(Clone, Debug)]
enum Why {
    Rejected {
        rejection: Rejection,
        problems: Vec<String>,
    },
    Acknowledged(Metadata),
    Deduplicated {
        admission: Admission,
        event_id: String,
        metadata: Option<Metadata>,
    },
    HostError {
        what: String,
    },
}

impl Answer {
    fn rejected(mode: Option<Mode>, rejection: Rejection) -> Answer {
        Answer {
            reply: rejection.reply(),
            mode,
            why: Why::Rejected {
                rejection,
                problems: Vec::new(),
            },
            origin_error: None,
            settlement: None,
        }
    }

    fn acknowledged(mode: Mode, metadata: Metadata) -> Answer {
        Answer {
            reply: Reply {
                status: 204,
                headers: Vec::new(),
                body: String::new(),
            },
            mode: Some(mode),
            why: Why::Acknowledged(metadata),
            origin_error: None,
            settlement: None,
        }
    }

    fn deduplicated(admission: Admission, metadata: Option<Metadata>, event_id: &str) -> Answer {
        let reply = admission.reply(event_id).unwrap_or_else(|| {
            // Unreachable: a forward admission is not an answer. Fail closed anyway.
            Rejection::new(ErrorCode::HostError, HOST_ERROR_DETAIL).reply()
        });
        Answer {
            reply,
            mode: Some(Mode::Enforce),
            why: Why::Deduplicated {
                admission,
                event_id: String::from(event_id),
                metadata,
            },
            origin_error: None,
            settlement: None,
        }
    }

    fn host_error(mode: Mode, what: &str) -> Answer {
        Answer {
            reply: Rejection::new(ErrorCode::HostError, HOST_ERROR_DETAIL).reply(),
            mode: Some(mode),
            why: Why::HostError {
                what: String::from(what),
            },
            origin_error: None,
            settlement: None,
        }
    }

    /// The answer of a host without a usable configuration (nothing to make an
    /// [`Exchange`] from): 500 `config_invalid` with a generic detail that sends the
    /// reader to `log` ("the Worker's log"), because anyone can send a request and a
    /// problem may quote a secret. `problems` go to the log line only ([`Report`]
    /// field `problems`); `mode` when a configuration was read but the host cannot
    /// run it.
    pub fn config_invalid(log: &str, mode: Option<Mode>, problems: Vec<String>) -> Answer {
        let mut detail = String::from("the filter has no valid configuration; see ");
        detail.push_str(log);
        let mut answer = Answer::rejected(mode, Rejection::new(ErrorCode::ConfigInvalid, detail));
        if let Why::Rejected { problems: p, .. } = &mut answer.why {
            *p = problems;
        }
        answer
    }

    /// The reply: status, headers (lower-case names) and body, exactly.
    pub fn reply(&self) -> &Reply {
        &self.reply
    }

    pub fn into_reply(self) -> Reply {
        self.reply
    }

    /// The refusal, when it is one (a host error is not: see [`ErrorCode::HostError`]).
    pub fn rejection(&self) -> Option<&Rejection> {
        match &self.why {
            Why::Rejected { rejection, .. } => Some(rejection),
            _ => None,
        }
    }

    /// The routing metadata, when the envelope was read.
    pub fn metadata(&self) -> Option<&Metadata> {
        match &self.why {
            Why::Acknowledged(metadata) => Some(metadata),
            Why::Deduplicated { metadata, .. } => metadata.as_ref(),
            Why::Rejected { .. } | Why::HostError { .. } => None,
        }
    }

    /// The decision as filter state spells it (`None` for a host error, which decided
    /// nothing about the delivery).
    pub fn decision(&self) -> Option<&'static str> {
        match &self.why {
            Why::Rejected { rejection, .. } => Some(Verdict::Reject(rejection.code).as_str()),
            Why::Acknowledged(_) => Some(Verdict::Acknowledge.as_str()),
            Why::Deduplicated { admission, .. } => Some(admission.as_str()),
            Why::HostError { .. } => None,
        }
    }

    /// With duplicate suppression, what to record now that the forward this answer
    /// replaces ended (a claim to release after a 502 or a host error).
    pub fn settlement(&self) -> Option<&Settlement> {
        self.settlement.as_ref()
    }

    /// What to report: for a 502 the origin's failure first, then the answer.
    pub fn reports(&self) -> impl Iterator<Item = Report<'_>> {
        let origin = self
            .origin_error
            .as_deref()
            .map(|error| Event::OriginUnreachable { error });
        let main = match &self.why {
            Why::Rejected {
                rejection,
                problems,
            } => Event::Rejected {
                rejection,
                problems,
            },
            Why::Acknowledged(metadata) => Event::Acknowledged { metadata },
            Why::Deduplicated {
                admission,
                event_id,
                ..
            } => Event::Deduplicated {
                admission: *admission,
                event_id,
            },
            Why::HostError { what } => Event::HostError { what },
        };
        let mode = self.mode;
        origin
            .into_iter()
            .chain(core::iter::once(main))
            .map(move |event| Report { mode, event })
    }

    /// The filter state: the routing metadata when known, then the decision. Nothing
    /// for a host error.
    pub fn filter_state(&self, set: &mut dyn FnMut(&str, &str)) {
        if let Some(m) = self.metadata() {
            report::metadata_state(m, set);
        }
        if let Some(decision) = self.decision() {
            set(STATE_DECISION, decision);
        }
    }
}

// ---------------------------------------------------------------------------
// Duplicate suppression

/// A forward waiting for duplicate suppression: look [`Admit::event_id`] up, then
/// hand this token back to [`Exchange::admit`] with what was found.
#[derive(Clone, Debug)]
pub struct Admit<'b> {
    forwarding: Forwarding<'b>,
    settings: DedupSettings,
    now: u64,
}

impl Admit<'_> {
    /// The event id to look up (`data.id`).
    pub fn event_id(&self) -> &str {
        self.forwarding.event_id()
    }

    /// The `dedup` section.
    pub fn settings(&self) -> &DedupSettings {
        &self.settings
    }

    /// Whether the storage claims the event when it admits a forward (enforce mode:
    /// store [`dedup::Claim::record`], as [`dedup::claim`] does), or only looks
    /// (shadow mode: as [`dedup::peek`], nothing stored).
    pub fn claims(&self) -> bool {
        self.forwarding.mode == Mode::Enforce
    }

    /// The admission from a table of slots (the Envoy hosts): [`dedup::claim`] in
    /// enforce mode, [`dedup::peek`] in shadow mode, at the time given to `finish`.
    pub fn admit_slots<S: SlotStore + ?Sized>(&self, store: &S) -> Admission {
        if self.claims() {
            dedup::claim(store, &self.settings, self.event_id(), self.now)
        } else {
            dedup::peek(store, &self.settings, self.event_id(), self.now)
        }
    }
}

/// What duplicate suppression records once a forwarded delivery ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// Enforce mode: the attempt holding `claim` ended. If the event's record is still
    /// that claim, store [`dedup::settle`]'s record (delivered when `succeeded`) or
    /// clear it, so that Persona's retry goes through.
    Claimed {
        event_id: String,
        claim: Claim,
        succeeded: bool,
    },
    /// Shadow mode (nothing was claimed): the origin took the delivery; record it as
    /// delivered, so that the next attempt is reported as a duplicate.
    Delivered { event_id: String },
}

impl Settlement {
    pub fn event_id(&self) -> &str {
        match self {
            Settlement::Claimed { event_id, .. } | Settlement::Delivered { event_id } => event_id,
        }
    }

    /// Records it in a table of slots (the Envoy hosts) at `now`: whether it was.
    pub fn apply_slots<S: SlotStore + ?Sized>(
        &self,
        store: &S,
        settings: &DedupSettings,
        now: u64,
    ) -> bool {
        match self {
            Settlement::Claimed {
                event_id,
                claim,
                succeeded,
            } => dedup::record_answer(store, settings, event_id, *claim, *succeeded, now),
            Settlement::Delivered { event_id } => {
                dedup::record_delivered(store, settings, event_id, now)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::{Record, StoreError};
    use crate::report::{Counter, Field, Level, STATE_KEYS};
    use crate::signature::signature_header;
    use alloc::collections::BTreeMap;
    use alloc::string::ToString;
    use alloc::vec;
    use core::cell::RefCell;

    const NOW: u64 = 1_700_000_000;
    const PEER: &str = "35.232.44.140:1234";
    const STRANGER: &str = "198.51.100.1:1";
    const EVENT: &[u8] = br#"{"data":{"type":"event","id":"evt_1","attributes":{"name":"inquiry.approved","created-at":"2024-01-01T00:00:00Z","payload":{"data":{"type":"inquiry","id":"inq_1","attributes":{"name-first":"Jane"}}}}}}"#;
    const JSON: [(&str, &str); 2] = [
        ("content-type", "application/json"),
        ("persona-webhook-attempts-made", "2"),
    ];

    fn policy(extra: &str) -> Policy {
        Policy::from_json(format!(r#"{{"signature":{{"required":false}}{extra}}}"#).as_bytes())
            .unwrap()
    }

    fn shadow(extra: &str) -> Policy {
        policy(&format!(r#","mode":"shadow"{extra}"#))
    }

    fn head<'a>(headers: &'a [(&'a str, &'a str)], peer: &'a str) -> RequestHead<'a> {
        RequestHead {
            method: "POST",
            headers,
            peer: Some(peer),
        }
    }

    /// Drives head and body with the whole request: the decision, or how it ended early.
    fn run<'b>(
        exchange: &mut Exchange<&Policy>,
        head: &RequestHead<'_>,
        body: &'b [u8],
    ) -> Decision<'b> {
        match exchange.head(head, None) {
            Head::Read { .. } => {}
            Head::Answer(answer) => return Decision::Answer(answer),
            Head::PassThrough(forward) => return Decision::Forward(forward),
            Head::Done => return Decision::Done,
        }
        match exchange.body(body.len(), true) {
            Body::Complete => exchange.finish(body, NOW),
            Body::Answer(answer) => Decision::Answer(answer),
            Body::PassThrough(forward) => Decision::Forward(forward),
            Body::More | Body::Done => panic!("the whole body was given"),
        }
    }

    fn answer(decision: Decision<'_>) -> Answer {
        match decision {
            Decision::Answer(answer) => answer,
            other => panic!("not an answer: {other:?}"),
        }
    }

    fn forward(decision: Decision<'_>) -> Forwarding<'_> {
        match decision {
            Decision::Forward(forward) => forward,
            other => panic!("not a forward: {other:?}"),
        }
    }

    fn admit(decision: Decision<'_>) -> Admit<'_> {
        match decision {
            Decision::Admit(token) => token,
            other => panic!("not an admission: {other:?}"),
        }
    }

    fn state_of(set: impl Fn(&mut dyn FnMut(&str, &str))) -> Vec<(String, String)> {
        let mut state = Vec::new();
        set(&mut |k, v| state.push((k.to_string(), v.to_string())));
        state
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn counters(report: &Report<'_>) -> Vec<(&'static str, u64)> {
        report.counters().map(|(c, n)| (c.name(), n)).collect()
    }

    fn kinds<'a>(reports: impl Iterator<Item = Report<'a>>) -> Vec<&'static str> {
        reports.map(|r| r.kind()).collect()
    }

    /// Every way a finished exchange is asked again: nothing happens.
    fn assert_inert(exchange: &mut Exchange<&Policy>) {
        assert!(exchange.is_done());
        assert!(matches!(
            exchange.head(&head(&JSON, PEER), None),
            Head::Done
        ));
        assert!(matches!(exchange.body(1, false), Body::Done));
        assert!(matches!(exchange.body(1, true), Body::Done));
        assert!(matches!(exchange.finish(EVENT, NOW), Decision::Done));
        assert!(exchange.source(Some(STRANGER)).is_none());
        assert!(exchange.origin_answered(200).is_none());
        assert!(exchange.origin_unreachable("down").is_none());
        assert!(exchange.host_error("late").is_none());
        assert!(exchange.is_done());
    }

    /// A slot table in memory (a version per slot, bumped by every store).
    #[derive(Default)]
    struct Slots(RefCell<BTreeMap<u32, (Vec<u8>, u64)>>);

    impl SlotStore for Slots {
        type Version = u64;
        fn load(&self, slot: u32) -> (Option<Vec<u8>>, u64) {
            match self.0.borrow().get(&slot) {
                Some((bytes, version)) => (Some(bytes.clone()), *version),
                None => (None, 0),
            }
        }
        fn store(&self, slot: u32, value: &[u8], expected: u64) -> Result<(), StoreError> {
            let mut slots = self.0.borrow_mut();
            let current = slots.get(&slot).map_or(0, |(_, v)| *v);
            if current != expected {
                return Err(StoreError::Conflict);
            }
            slots.insert(slot, (value.to_vec(), current + 1));
            Ok(())
        }
    }

    impl Slots {
        fn record(&self, settings: &DedupSettings, event_id: &str) -> Option<Record> {
            let (bytes, _) = self.load(dedup::slot_of(event_id, settings.capacity));
            bytes.and_then(|b| dedup::decode_for(&b, event_id))
        }
    }

    // -----------------------------------------------------------------------
    // Refusals

    #[test]
    fn a_refused_head_is_answered_and_reported() {
        let p = policy("");
        let mut exchange = Exchange::new(&p);
        let get = RequestHead {
            method: "GET",
            ..head(&JSON, PEER)
        };
        let Head::Answer(answer) = exchange.head(&get, None) else {
            panic!()
        };
        assert_eq!(answer.reply().status, 405);
        assert_eq!(
            answer.reply().headers,
            [("content-type", String::from("application/vnd.api+json"))]
        );
        assert_eq!(
            answer.reply().body,
            r#"{"errors":[{"status":"405","code":"method_not_allowed","title":"Method not allowed","detail":"\"GET\" is not allowed; Persona delivers with POST"}]}"#
        );
        assert_eq!(
            answer.decision(),
            Some("reject; status=405; code=method_not_allowed")
        );
        assert!(answer.settlement().is_none());
        let reports: Vec<Report<'_>> = answer.reports().collect();
        assert_eq!(reports.len(), 1);
        let r = &reports[0];
        assert_eq!(r.kind(), "reject");
        assert_eq!(r.level(), Level::Warn);
        assert_eq!(
            r.text(),
            r#"persona-edge: rejected status=405 code=method_not_allowed event=- detail="GET" is not allowed; Persona delivers with POST"#
        );
        assert_eq!(counters(r), [("rejected.method_not_allowed", 1)]);
        assert_eq!(
            r.fields(),
            [
                ("status", Field::Number(405)),
                ("code", Field::Text("method_not_allowed")),
                (
                    "detail",
                    Field::Text("\"GET\" is not allowed; Persona delivers with POST")
                ),
                ("mode", Field::Text("enforce")),
            ]
        );
        assert_eq!(
            state_of(|set| answer.filter_state(set)),
            pairs(&[(
                "persona_decision",
                "reject; status=405; code=method_not_allowed"
            )])
        );
        assert_inert(&mut exchange);
    }

    #[test]
    fn the_source_can_be_answered_before_the_headers() {
        let p = policy("");
        let mut exchange = Exchange::new(&p);
        assert!(exchange.wants_peer());
        let early = exchange.source(Some(STRANGER)).unwrap();
        // The same answer the head would have given.
        let mut late = Exchange::new(&p);
        let Head::Answer(from_head) = late.head(&head(&JSON, STRANGER), None) else {
            panic!()
        };
        assert_eq!(early.reply(), from_head.reply());
        assert_eq!(early.reply().status, 403);
        assert_eq!(
            early.decision(),
            Some("reject; status=403; code=source_not_allowed")
        );
        assert_inert(&mut exchange);

        // An allowed peer goes on to the head.
        let mut allowed = Exchange::new(&p);
        assert!(allowed.source(Some(PEER)).is_none());
        assert!(matches!(
            allowed.head(&head(&JSON, PEER), None),
            Head::Read { .. }
        ));
        // A missing peer is unknown.
        let mut missing = Exchange::new(&p);
        assert_eq!(
            missing.source(None).unwrap().rejection().map(|r| r.code),
            Some(ErrorCode::SourceUnknown)
        );

        // Shadow mode never answers on the source; a header source is read with the
        // headers.
        let s = shadow("");
        let mut exchange = Exchange::new(&s);
        assert!(exchange.source(Some(STRANGER)).is_none());
        assert!(matches!(
            exchange.head(&head(&JSON, STRANGER), None),
            Head::Read { .. }
        ));
        let h =
            policy(r#","sources":{"client_address":{"from":"header","name":"cf-connecting-ip"}}"#);
        let mut exchange = Exchange::new(&h);
        assert!(!exchange.wants_peer());
        assert!(exchange.source(Some(STRANGER)).is_none());
        assert!(exchange.source(None).is_none());
    }

    #[test]
    fn enforce_refuses_a_declared_length_past_the_limit_before_the_body() {
        let p = policy(r#","limits":{"max_body_bytes":10}"#);
        let mut exchange = Exchange::new(&p);
        let Head::Answer(answer) = exchange.head(&head(&JSON, PEER), Some(11)) else {
            panic!()
        };
        assert_eq!(answer.reply().status, 413);
        assert_eq!(
            answer.rejection().unwrap().detail,
            "the body is larger than 10 bytes"
        );
        assert_eq!(
            counters(&answer.reports().next().unwrap()),
            [("rejected.body_too_large", 1)]
        );
        assert_inert(&mut exchange);
        // At the limit it is read.
        let mut exchange = Exchange::new(&p);
        assert!(matches!(
            exchange.head(&head(&JSON, PEER), Some(10)),
            Head::Read { .. }
        ));
    }

    #[test]
    fn enforce_refuses_a_body_as_soon_as_it_passes_the_limit() {
        let p = policy(r#","limits":{"max_body_bytes":10}"#);
        let mut exchange = Exchange::new(&p);
        assert!(matches!(
            exchange.head(&head(&JSON, PEER), None),
            Head::Read { .. }
        ));
        assert!(matches!(exchange.body(4, false), Body::More));
        assert!(matches!(exchange.body(10, false), Body::More));
        let Body::Answer(answer) = exchange.body(11, false) else {
            panic!()
        };
        assert_eq!(answer.reply().status, 413);
        assert_eq!(
            answer.decision(),
            Some("reject; status=413; code=body_too_large")
        );
        assert_inert(&mut exchange);
    }

    #[test]
    fn a_refused_body_is_answered_with_its_code() {
        let p = Policy::from_json(br#"{"signature":{"secrets":["wbhsec_a"]}}"#).unwrap();
        let wrong = signature_header("wbhsec_b", NOW, EVENT);
        let headers = [
            ("content-type", "application/json"),
            ("persona-signature", &wrong),
        ];
        let mut exchange = Exchange::new(&p);
        let answer = answer(run(&mut exchange, &head(&headers, PEER), EVENT));
        assert_eq!(answer.reply().status, 401);
        assert_eq!(
            answer.rejection().unwrap().code,
            ErrorCode::SignatureMismatch
        );
        assert!(answer.metadata().is_none());
        let r = answer.reports().next().unwrap();
        assert_eq!(counters(&r), [("rejected.signature_mismatch", 1)]);
        assert!(r.text().starts_with(
            "persona-edge: rejected status=401 code=signature_mismatch event=- detail="
        ));
        assert_inert(&mut exchange);
        // Signed right, it goes on.
        let right = signature_header("wbhsec_a", NOW, EVENT);
        let headers = [
            ("content-type", "application/json"),
            ("persona-signature", &right),
        ];
        let mut exchange = Exchange::new(&p);
        forward(run(&mut exchange, &head(&headers, PEER), EVENT));
    }

    #[test]
    fn a_body_that_breaks_off_is_refused_in_both_modes() {
        for p in [policy(""), shadow("")] {
            let mut exchange = Exchange::new(&p);
            assert!(exchange.body_unreadable("early").is_none());
            assert!(matches!(
                exchange.head(&head(&JSON, PEER), None),
                Head::Read { .. }
            ));
            assert!(matches!(exchange.body(3, false), Body::More));
            let a = exchange
                .body_unreadable("Network connection lost.")
                .unwrap();
            assert_eq!(a.reply().status, 400);
            assert_eq!(
                a.rejection().unwrap().detail,
                "the body could not be read to its end (Network connection lost.)"
            );
            let r = a.reports().next().unwrap();
            assert_eq!(counters(&r), [("rejected.invalid_json", 1)]);
            assert_eq!(r.fields()[3], ("mode", Field::Text(p.mode().as_str())));
            assert_inert(&mut exchange);
            assert!(exchange.body_unreadable("late").is_none());
        }
    }

    // -----------------------------------------------------------------------
    // Forwards and acknowledgements

    #[test]
    fn enforce_forwards_the_changed_body_with_its_headers_and_state() {
        let p = policy(r#","blocklist":["name-*"]"#);
        let headers = [
            ("content-type", "application/json"),
            ("persona-webhook-attempts-made", "2"),
            ("x-persona-event-id", "spoof"),
        ];
        let mut exchange = Exchange::new(&p);
        let Head::Read { remove_headers } = exchange.head(&head(&headers, PEER), None) else {
            panic!()
        };
        assert_eq!(
            remove_headers,
            ["x-persona-event-id", "persona-signature", "content-length"]
        );
        assert!(matches!(exchange.body(EVENT.len(), false), Body::More));
        assert!(matches!(exchange.body(EVENT.len(), true), Body::Complete));
        let f = forward(exchange.finish(EVENT, NOW));
        assert_eq!(f.remove_headers(), remove_headers);
        let changed = f.changed_body().unwrap();
        assert_eq!(f.body(), Some(changed));
        assert!(!changed.windows(4).any(|w| w == b"Jane"));
        assert_eq!(f.stripped(), 1);
        assert_eq!(f.verdict(), Verdict::Forward);
        assert_eq!(f.decision(), "forward");
        assert_eq!(
            f.set_headers().collect::<Vec<_>>(),
            [
                ("x-persona-event-id", "evt_1"),
                ("x-persona-event-name", "inquiry.approved"),
                ("x-persona-event-created-at", "2024-01-01T00:00:00Z"),
                ("x-persona-resource-type", "inquiry"),
                ("x-persona-resource-id", "inq_1"),
                ("x-persona-attempt", "2"),
            ]
        );
        let reports: Vec<Report<'_>> = f.reports().collect();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].kind(), "forward");
        assert_eq!(reports[0].level(), Level::Debug);
        assert_eq!(
            reports[0].text(),
            "persona-edge: forwarded event=evt_1 stripped=1"
        );
        assert_eq!(
            counters(&reports[0]),
            [("forwarded", 1), ("attributes_stripped", 1)]
        );
        let state = state_of(|set| f.filter_state(set));
        let keys: Vec<&str> = state.iter().map(|(k, _)| k.as_str()).take(8).collect();
        assert_eq!(keys, STATE_KEYS);
        assert_eq!(
            state,
            pairs(&[
                ("persona_event_id", "evt_1"),
                ("persona_event_name", "inquiry.approved"),
                ("persona_event_created_at", "2024-01-01T00:00:00Z"),
                ("persona_resource_type", "inquiry"),
                ("persona_resource_id", "inq_1"),
                ("persona_attempt", "2"),
                ("persona_decision", "forward"),
                ("persona_stripped", "1"),
                ("persona_header.x-persona-event-id", "evt_1"),
                ("persona_header.x-persona-event-name", "inquiry.approved"),
                (
                    "persona_header.x-persona-event-created-at",
                    "2024-01-01T00:00:00Z"
                ),
                ("persona_header.x-persona-resource-type", "inquiry"),
                ("persona_header.x-persona-resource-id", "inq_1"),
                ("persona_header.x-persona-attempt", "2"),
            ])
        );
        // Without changes the original bytes go on, and nothing is stripped.
        let plain = policy("");
        let mut exchange = Exchange::new(&plain);
        let f = forward(run(&mut exchange, &head(&JSON, PEER), EVENT));
        assert_eq!(f.changed_body(), None);
        assert_eq!(f.body(), Some(EVENT));
        assert_eq!(counters(&f.reports().next().unwrap()), [("forwarded", 1)]);
        assert_eq!(exchange.origin_answered(200), None);
        assert_inert(&mut exchange);
    }

    #[test]
    fn a_request_without_a_body_is_finished_after_its_head() {
        let p = policy("");
        let mut exchange = Exchange::new(&p);
        assert!(matches!(
            exchange.head(&head(&JSON, PEER), Some(0)),
            Head::Read { .. }
        ));
        let a = answer(exchange.finish(&[], NOW));
        assert_eq!(a.rejection().unwrap().code, ErrorCode::InvalidJson);
        assert_inert(&mut exchange);
    }

    #[test]
    fn an_event_not_forwarded_is_acknowledged() {
        let p = policy(r#","events":{"forward":["verification.*"]}"#);
        let mut exchange = Exchange::new(&p);
        let a = answer(run(&mut exchange, &head(&JSON, PEER), EVENT));
        assert_eq!(
            *a.reply(),
            Reply {
                status: 204,
                headers: Vec::new(),
                body: String::new()
            }
        );
        assert!(a.rejection().is_none());
        assert_eq!(a.metadata().unwrap().event_id, "evt_1");
        assert_eq!(a.decision(), Some("acknowledge; status=204"));
        let r = a.reports().next().unwrap();
        assert_eq!((r.kind(), r.level()), ("acknowledge", Level::Info));
        assert_eq!(
            r.text(),
            "persona-edge: acknowledged status=204 event=evt_1 name=inquiry.approved (not forwarded: events.forward)"
        );
        assert_eq!(counters(&r), [("acknowledged", 1)]);
        assert_eq!(
            r.fields(),
            [
                ("status", Field::Number(204)),
                ("event_id", Field::Text("evt_1")),
                ("event_name", Field::Text("inquiry.approved")),
            ]
        );
        let state = state_of(|set| a.filter_state(set));
        assert_eq!(state.len(), 7);
        assert_eq!(
            state[6],
            (
                String::from("persona_decision"),
                String::from("acknowledge; status=204")
            )
        );
        assert_inert(&mut exchange);
    }

    // -----------------------------------------------------------------------
    // Shadow mode

    #[test]
    fn shadow_forwards_the_original_and_reports_what_enforce_would_do() {
        let cases = [
            (
                shadow(r#","blocklist":["name-*"]"#),
                PEER,
                "forward",
                "shadow.would_forward",
            ),
            (
                shadow(r#","events":{"forward":["verification.*"]}"#),
                PEER,
                "acknowledge; status=204",
                "shadow.would_acknowledge",
            ),
            (
                shadow(""),
                STRANGER,
                "reject; status=403; code=source_not_allowed",
                "shadow.would_reject.source_not_allowed",
            ),
        ];
        for (p, peer, decision, counter) in cases {
            let mut exchange = Exchange::new(&p);
            let Head::Read { remove_headers } = exchange.head(&head(&JSON, peer), None) else {
                panic!()
            };
            assert!(remove_headers.is_empty(), "{decision}");
            assert!(matches!(exchange.body(EVENT.len(), true), Body::Complete));
            let f = forward(exchange.finish(EVENT, NOW));
            assert_eq!(f.body(), Some(EVENT), "{decision}");
            assert_eq!(f.changed_body(), None);
            assert!(f.remove_headers().is_empty());
            assert_eq!(f.stripped(), 0);
            assert_eq!(f.decision(), decision);
            assert_eq!(
                f.set_headers().collect::<Vec<_>>(),
                [(DECISION_HEADER, decision)]
            );
            let r = f.reports().next().unwrap();
            assert_eq!((r.kind(), r.level()), ("shadow", Level::Info));
            assert_eq!(counters(&r), [("forwarded", 1), (counter, 1)]);
            let event = if peer == PEER { "evt_1" } else { "-" };
            assert_eq!(
                r.text(),
                format!(
                    "persona-edge: shadow: forwarded unchanged; enforce would: {decision} event={event}"
                )
            );
            let state = state_of(|set| f.filter_state(set));
            let decision_state = (String::from("persona_decision"), String::from(decision));
            assert!(state.contains(&decision_state), "{state:?}");
            assert!(!state.iter().any(|(k, _)| k == "persona_stripped"));
            assert_eq!(
                state.last().unwrap(),
                &(
                    String::from("persona_header.x-persona-edge-decision"),
                    String::from(decision)
                )
            );
            assert_eq!(exchange.origin_answered(500), None);
            assert_inert(&mut exchange);
        }
    }

    #[test]
    fn shadow_passes_a_body_past_the_limit_through_unbuffered() {
        let p = shadow(r#","limits":{"max_body_bytes":10}"#);
        let check = |f: &Forwarding<'static>, decision: &str, code: &str| {
            assert_eq!(f.body(), None);
            assert_eq!(f.changed_body(), None);
            assert!(f.remove_headers().is_empty());
            assert!(f.metadata().is_none());
            assert_eq!(f.decision(), decision);
            assert_eq!(
                f.set_headers().collect::<Vec<_>>(),
                [(DECISION_HEADER, decision)]
            );
            let r = f.reports().next().unwrap();
            assert_eq!(
                counters(&r),
                [
                    ("forwarded", 1),
                    (
                        Counter::WouldReject(match code {
                            "body_too_large" => ErrorCode::BodyTooLarge,
                            _ => ErrorCode::SourceNotAllowed,
                        })
                        .name(),
                        1
                    )
                ]
            );
            assert_eq!(
                r.text(),
                format!(
                    "persona-edge: shadow: forwarded unchanged; enforce would: {decision} event=-"
                )
            );
            assert_eq!(
                state_of(|set| f.filter_state(set)),
                pairs(&[
                    ("persona_decision", decision),
                    ("persona_header.x-persona-edge-decision", decision),
                ])
            );
        };
        let too_large = "reject; status=413; code=body_too_large";
        // Declared.
        let mut exchange = Exchange::new(&p);
        let Head::PassThrough(f) = exchange.head(&head(&JSON, PEER), Some(11)) else {
            panic!()
        };
        check(&f, too_large, "body_too_large");
        assert!(matches!(exchange.body(20, false), Body::Done));
        assert_eq!(exchange.origin_answered(200), None);
        assert_inert(&mut exchange);
        // While reading.
        let mut exchange = Exchange::new(&p);
        assert!(matches!(
            exchange.head(&head(&JSON, PEER), None),
            Head::Read { .. }
        ));
        assert!(matches!(exchange.body(10, false), Body::More));
        let Body::PassThrough(f) = exchange.body(11, false) else {
            panic!()
        };
        check(&f, too_large, "body_too_large");
        // The origin failing is still answered 502.
        let a = exchange.origin_unreachable("refused").unwrap();
        assert_eq!(a.reply().status, 502);
        assert_inert(&mut exchange);
        // The head's would-be refusal comes first, as `process_body` reports it.
        let mut exchange = Exchange::new(&p);
        let Head::PassThrough(f) = exchange.head(&head(&JSON, STRANGER), Some(11)) else {
            panic!()
        };
        check(
            &f,
            "reject; status=403; code=source_not_allowed",
            "source_not_allowed",
        );
        // The same decision `finish` gives a whole body (the command, a buffering host).
        let mut whole = Exchange::new(&p);
        assert!(matches!(
            whole.head(&head(&JSON, STRANGER), None),
            Head::Read { .. }
        ));
        assert_eq!(
            forward(whole.finish(EVENT, NOW)).decision(),
            "reject; status=403; code=source_not_allowed"
        );
    }

    // -----------------------------------------------------------------------
    // Duplicate suppression

    const DEDUP: &str =
        r#","dedup":{"enabled":true,"ttl_seconds":100,"in_flight_seconds":10,"capacity":16}"#;

    #[test]
    fn without_dedup_there_is_no_admission_step() {
        let p = policy("");
        let mut exchange = Exchange::new(&p);
        forward(run(&mut exchange, &head(&JSON, PEER), EVENT));
        // With dedup, only a forward is looked up: not an acknowledgement, not a
        // shadow-mode would-be refusal.
        let ack = policy(&format!(r#"{DEDUP},"events":{{"forward":["x.*"]}}"#));
        answer(run(&mut Exchange::new(&ack), &head(&JSON, PEER), EVENT));
        let s = shadow(DEDUP);
        let f = forward(run(&mut Exchange::new(&s), &head(&JSON, STRANGER), EVENT));
        assert_eq!(f.decision(), "reject; status=403; code=source_not_allowed");
    }

    #[test]
    fn enforce_dedup_forwards_once_then_answers_at_the_edge() {
        let p = policy(DEDUP);
        let settings = *p.dedup().unwrap();
        let store = Slots::default();

        // First attempt: claimed, forwarded, delivered.
        let mut first = Exchange::new(&p);
        let token = admit(run(&mut first, &head(&JSON, PEER), EVENT));
        assert_eq!(token.event_id(), "evt_1");
        assert_eq!(*token.settings(), settings);
        assert!(token.claims());
        // Nothing else happens while the host looks the id up.
        assert!(matches!(first.body(1, true), Body::Done));
        let admission = token.admit_slots(&store);
        let Admission::Forward { claim } = admission else {
            panic!("{admission:?}")
        };
        assert_eq!(claim.since, NOW);
        assert_eq!(
            store.record(&settings, "evt_1"),
            Some(Record::InFlight { since: NOW })
        );
        let f = forward(first.admit(token, Some(admission)));
        assert_eq!(f.decision(), "forward");
        assert_eq!(kinds(f.reports()), ["forward"]);

        // A retry while the first is in flight: 409.
        let mut second = Exchange::new(&p);
        let token = admit(run(&mut second, &head(&JSON, PEER), EVENT));
        let found = token.admit_slots(&store);
        let busy = answer(second.admit(token, Some(found)));
        assert_eq!(busy.reply().status, 409);
        assert_eq!(
            busy.reply().headers,
            [
                ("content-type", String::from("application/vnd.api+json")),
                ("retry-after", String::from("10"))
            ]
        );
        assert_eq!(
            busy.decision(),
            Some("reject; status=409; code=delivery_in_flight")
        );
        assert!(busy.rejection().is_none());
        let r = busy.reports().next().unwrap();
        assert_eq!(r.kind(), "deduplicated.in_flight");
        assert_eq!(counters(&r), [("deduplicated.in_flight", 1)]);
        assert_eq!(
            r.fields(),
            [
                (
                    "decision",
                    Field::Text("reject; status=409; code=delivery_in_flight")
                ),
                ("status", Field::Number(409)),
                ("event_id", Field::Text("evt_1")),
                ("mode", Field::Text("enforce")),
                ("retry_after", Field::Number(10)),
            ]
        );
        assert_eq!(
            r.text(),
            "persona-edge: deduplicated status=409 event=evt_1 (an earlier attempt is in flight; retry after 10 s)"
        );
        assert_inert(&mut second);

        // The origin took the first: recorded as delivered.
        let settlement = first.origin_answered(202).unwrap();
        assert_eq!(
            settlement,
            Settlement::Claimed {
                event_id: String::from("evt_1"),
                claim,
                succeeded: true
            }
        );
        assert_eq!(settlement.event_id(), "evt_1");
        assert!(settlement.apply_slots(&store, &settings, NOW + 1));
        assert_eq!(
            store.record(&settings, "evt_1"),
            Some(Record::Delivered { at: NOW + 1 })
        );
        assert_inert(&mut first);

        // A later attempt is a duplicate: 200 at the edge.
        let mut third = Exchange::new(&p);
        let token = admit(run(&mut third, &head(&JSON, PEER), EVENT));
        let found = token.admit_slots(&store);
        let dup = answer(third.admit(token, Some(found)));
        assert_eq!(dup.reply().status, 200);
        assert_eq!(
            dup.reply().body,
            r#"{"meta":{"persona_edge":{"result":"duplicate","event_id":"evt_1","delivered_at":"2023-11-14T22:13:21Z"}}}"#
        );
        assert_eq!(dup.decision(), Some("duplicate; status=200"));
        let r = dup.reports().next().unwrap();
        assert_eq!(
            (r.kind(), r.level()),
            ("deduplicated.duplicate", Level::Info)
        );
        assert_eq!(counters(&r), [("deduplicated.duplicate", 1)]);
        assert_eq!(
            r.text(),
            "persona-edge: deduplicated status=200 event=evt_1 (delivered at 2023-11-14T22:13:21Z)"
        );
        let state = state_of(|set| dup.filter_state(set));
        assert_eq!(state[0].1, "evt_1");
        assert_eq!(
            state.last().unwrap(),
            &(
                String::from("persona_decision"),
                String::from("duplicate; status=200")
            )
        );
        assert_inert(&mut third);
    }

    #[test]
    fn a_failed_attempt_releases_its_claim() {
        let p = policy(DEDUP);
        let settings = *p.dedup().unwrap();
        let store = Slots::default();
        type Failure = fn(&mut Exchange<&Policy>) -> Option<Settlement>;
        let failures: [Failure; 3] = [
            |e| e.origin_answered(503),
            |e| {
                e.origin_unreachable("connection refused")?
                    .settlement()
                    .cloned()
            },
            |e| e.host_error("replacing the body")?.settlement().cloned(),
        ];
        for fail in failures {
            let mut exchange = Exchange::new(&p);
            let token = admit(run(&mut exchange, &head(&JSON, PEER), EVENT));
            let found = token.admit_slots(&store);
            let Admission::Forward { claim } = found else {
                panic!()
            };
            forward(exchange.admit(token, Some(found)));
            let settlement = fail(&mut exchange).unwrap();
            assert_eq!(
                settlement,
                Settlement::Claimed {
                    event_id: String::from("evt_1"),
                    claim,
                    succeeded: false
                }
            );
            assert!(settlement.apply_slots(&store, &settings, NOW));
            assert_eq!(store.record(&settings, "evt_1"), None);
            assert_inert(&mut exchange);
        }
    }

    #[test]
    fn storage_that_cannot_answer_lets_the_delivery_through() {
        let p = policy(DEDUP);
        let mut exchange = Exchange::new(&p);
        let token = admit(run(&mut exchange, &head(&JSON, PEER), EVENT));
        let f = forward(exchange.admit(token, None));
        assert_eq!(f.decision(), "forward");
        assert_eq!(exchange.origin_answered(200), None);
        assert_inert(&mut exchange);
    }

    #[test]
    fn shadow_dedup_looks_only_and_reports_what_it_would_answer() {
        let p = shadow(DEDUP);
        let settings = *p.dedup().unwrap();
        let store = Slots::default();

        // First: nothing stored, nothing claimed; a success is recorded.
        let mut first = Exchange::new(&p);
        let token = admit(run(&mut first, &head(&JSON, PEER), EVENT));
        assert!(!token.claims());
        let found = token.admit_slots(&store);
        assert!(matches!(found, Admission::Forward { .. }));
        assert_eq!(store.record(&settings, "evt_1"), None);
        let f = forward(first.admit(token, Some(found)));
        assert_eq!(f.decision(), "forward");
        assert_eq!(kinds(f.reports()), ["shadow"]);
        let settlement = first.origin_answered(200).unwrap();
        assert_eq!(
            settlement,
            Settlement::Delivered {
                event_id: String::from("evt_1")
            }
        );
        assert!(settlement.apply_slots(&store, &settings, NOW));
        assert_eq!(
            store.record(&settings, "evt_1"),
            Some(Record::Delivered { at: NOW })
        );

        // Second: forwarded anyway, reported as the duplicate enforce would answer.
        let mut second = Exchange::new(&p);
        let token = admit(run(&mut second, &head(&JSON, PEER), EVENT));
        let found = token.admit_slots(&store);
        assert_eq!(found, Admission::Duplicate { delivered_at: NOW });
        let f = forward(second.admit(token, Some(found)));
        assert_eq!(f.body(), Some(EVENT));
        assert_eq!(f.verdict(), Verdict::Forward);
        assert_eq!(f.decision(), "duplicate; status=200");
        assert_eq!(
            f.set_headers().collect::<Vec<_>>(),
            [(DECISION_HEADER, "duplicate; status=200")]
        );
        let reports: Vec<Report<'_>> = f.reports().collect();
        assert_eq!(
            kinds(reports.iter().copied()),
            ["shadow", "deduplicated.duplicate"]
        );
        // Only the forward counts: nothing was deduplicated.
        assert_eq!(
            counters(&reports[0]),
            [("forwarded", 1), ("shadow.would_forward", 1)]
        );
        assert_eq!(counters(&reports[1]), []);
        assert_eq!(
            reports[1].text(),
            "persona-edge: shadow: forwarded unchanged; dedup would: duplicate; status=200 event=evt_1"
        );
        assert_eq!(
            reports[1].fields(),
            [
                ("decision", Field::Text("duplicate; status=200")),
                ("status", Field::Number(200)),
                ("event_id", Field::Text("evt_1")),
                ("mode", Field::Text("shadow")),
            ]
        );
        let state = state_of(|set| f.filter_state(set));
        assert!(state.contains(&(
            String::from("persona_decision"),
            String::from("duplicate; status=200")
        )));
        assert_eq!(
            state.last().unwrap().1,
            "duplicate; status=200",
            "{state:?}"
        );
        // A failure records nothing in shadow mode.
        assert_eq!(second.origin_answered(500), None);
        assert_inert(&mut second);
    }

    // -----------------------------------------------------------------------
    // Host errors and misuse

    /// The filter's reply before host errors had a code of their own: unchanged.
    const HOST_ERROR_BODY: &str = r#"{"errors":[{"status":"500","code":"host_error","title":"Proxy host call failed","detail":"see the proxy log"}]}"#;

    #[test]
    fn a_host_error_fails_closed_from_any_step() {
        let p = policy("");
        let steps: [fn(&mut Exchange<&Policy>); 4] = [
            |_| {},
            |e| {
                e.head(&head(&JSON, PEER), None);
            },
            |e| {
                e.head(&head(&JSON, PEER), None);
                e.body(3, false);
            },
            |e| {
                forward(run(e, &head(&JSON, PEER), EVENT));
            },
        ];
        for step in steps {
            let mut exchange = Exchange::new(&p);
            step(&mut exchange);
            let a = exchange.host_error("reading the clock").unwrap();
            assert_eq!(a.reply().status, 500);
            assert_eq!(
                a.reply().headers,
                [("content-type", String::from("application/vnd.api+json"))]
            );
            assert_eq!(a.reply().body, HOST_ERROR_BODY);
            assert!(a.rejection().is_none());
            assert_eq!(a.decision(), None);
            assert!(a.settlement().is_none());
            let r = a.reports().next().unwrap();
            assert_eq!((r.kind(), r.level()), ("host_error", Level::Error));
            assert_eq!(
                r.text(),
                "persona-edge: host call failed: reading the clock; answering 500"
            );
            assert_eq!(counters(&r), [("host_errors", 1)]);
            assert_eq!(
                r.fields(),
                [
                    ("error", Field::Text("reading the clock")),
                    ("status", Field::Number(500)),
                ]
            );
            assert!(state_of(|set| a.filter_state(set)).is_empty());
            assert_inert(&mut exchange);
        }
        // After the origin answered there is nothing left to fail.
        let mut exchange = Exchange::new(&p);
        forward(run(&mut exchange, &head(&JSON, PEER), EVENT));
        assert_eq!(exchange.origin_answered(200), None);
        assert!(exchange.host_error("late").is_none());
    }

    #[test]
    fn calls_out_of_order_fail_closed() {
        let p = policy("");
        let mut exchange = Exchange::new(&p);
        let Body::Answer(a) = exchange.body(10, true) else {
            panic!()
        };
        assert_eq!(a.reply().body, HOST_ERROR_BODY);
        assert_inert(&mut exchange);

        let mut exchange = Exchange::new(&p);
        let a = answer(exchange.finish(EVENT, NOW));
        assert_eq!(a.reply().status, 500);
        assert!(
            a.reports()
                .next()
                .unwrap()
                .text()
                .contains("before the head")
        );
        assert_inert(&mut exchange);

        let mut exchange = Exchange::new(&p);
        assert!(matches!(
            exchange.head(&head(&JSON, PEER), None),
            Head::Read { .. }
        ));
        let Head::Answer(a) = exchange.head(&head(&JSON, PEER), None) else {
            panic!()
        };
        assert_eq!(a.reply().status, 500);
        assert_inert(&mut exchange);

        // A token handed to an exchange that is not waiting for one.
        let d = policy(DEDUP);
        let mut one = Exchange::new(&d);
        let token = admit(run(&mut one, &head(&JSON, PEER), EVENT));
        let mut other = Exchange::new(&d);
        let a = answer(other.admit(token, None));
        assert_eq!(a.reply().status, 500);
        // Nothing is forwarded before the origin: it is not answered.
        assert!(other.origin_answered(200).is_none());
    }

    #[test]
    fn the_origin_unreachable_is_a_502_with_the_reason_in_the_log_only() {
        let p = policy("");
        let mut exchange = Exchange::new(&p);
        assert!(exchange.origin_unreachable("too early").is_none());
        forward(run(&mut exchange, &head(&JSON, PEER), EVENT));
        let a = exchange
            .origin_unreachable("connect to 10.0.0.7 refused")
            .unwrap();
        assert_eq!(
            a.reply().body,
            r#"{"errors":[{"status":"502","code":"origin_unreachable","title":"Origin unreachable","detail":"the origin could not be reached; Persona will retry"}]}"#
        );
        let reports: Vec<Report<'_>> = a.reports().collect();
        assert_eq!(kinds(reports.iter().copied()), ["origin_error", "reject"]);
        assert_eq!(
            reports[0].fields(),
            [("error", Field::Text("connect to 10.0.0.7 refused"))]
        );
        assert_eq!(reports[0].level(), Level::Error);
        assert_eq!(counters(&reports[0]), []);
        assert_eq!(counters(&reports[1]), [("rejected.origin_unreachable", 1)]);
        assert_eq!(reports[1].level(), Level::Error);
        assert_inert(&mut exchange);
    }

    #[test]
    fn config_invalid_is_generic_and_logs_the_problems() {
        let problems = vec![String::from("signature.secrets[0]: empty secret")];
        let a = Answer::config_invalid("the Worker's log", None, problems.clone());
        assert_eq!(a.reply().status, 500);
        assert_eq!(
            a.reply().body,
            r#"{"errors":[{"status":"500","code":"config_invalid","title":"Filter configuration invalid","detail":"the filter has no valid configuration; see the Worker's log"}]}"#
        );
        let r = a.reports().next().unwrap();
        assert_eq!((r.kind(), r.level()), ("reject", Level::Error));
        assert_eq!(
            r.fields(),
            [
                ("status", Field::Number(500)),
                ("code", Field::Text("config_invalid")),
                (
                    "detail",
                    Field::Text("the filter has no valid configuration; see the Worker's log")
                ),
                ("mode", Field::Text("none")),
                ("problems", Field::List(&problems)),
            ]
        );
        let with_mode = Answer::config_invalid("the proxy log", Some(Mode::Shadow), Vec::new());
        assert_eq!(
            with_mode.reports().next().unwrap().fields()[3],
            ("mode", Field::Text("shadow"))
        );
        assert_eq!(with_mode.reports().next().unwrap().fields().len(), 4);
    }

    #[test]
    fn content_length_is_one_number() {
        type Headers<'a> = &'a [(&'a str, &'a str)];
        let cases: [(Headers<'_>, Option<usize>); 5] = [
            (&[("Content-Length", " 42 ")], Some(42)),
            (&[], None),
            (&[("content-length", "x")], None),
            (&[("content-length", "-1")], None),
            (&[("content-length", "1"), ("content-length", "1")], None),
        ];
        for (headers, want) in cases {
            assert_eq!(head(headers, PEER).content_length(), want, "{headers:?}");
        }
    }

    /// An owned policy and a shared one drive the same exchange.
    #[test]
    fn the_policy_can_be_owned_or_shared() {
        let shared = alloc::rc::Rc::new(policy(""));
        let mut exchange = Exchange::new(shared.clone());
        assert!(matches!(
            exchange.head(&head(&JSON, PEER), None),
            Head::Read { .. }
        ));
        let mut owned = Exchange::new(policy(""));
        assert!(owned.source(Some(STRANGER)).is_some());
    }
}
