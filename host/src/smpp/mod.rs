//! SMPP, the second transport through the egress gate: the host owns each
//! bind to an SMSC ([`session`]), adapters word each message through the
//! `smpp` import, and the host encodes and splits the text ([`encode`]) and
//! reads the delivery receipts SMSCs send ([`receipt`]).

mod bind;
pub mod encode;
mod inbound;
pub mod receipt;
pub mod session;

pub use session::{Session, Sessions};

/// An address and its type of number and numbering plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub ton: u8,
    pub npi: u8,
    pub addr: String,
}

/// How a text is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// GSM 03.38 when every character is in it, else UCS-2.
    Auto,
    Gsm7,
    Latin1,
    Ucs2,
}

/// One message as an adapter words it.
#[derive(Debug, Clone)]
pub struct Submit {
    pub source: Address,
    pub destination: Address,
    pub service_type: String,
    pub registered_delivery: u8,
    pub coding: Coding,
    pub text: String,
}

/// What the SMSC took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// Each part's `message_id`, in order.
    pub message_ids: Vec<String>,
    /// The id receipts are matched on: the first part's, in compared form.
    pub reference: String,
    pub parts: u32,
}

/// Why a submit did not go, or may not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmppError {
    /// Refused by the host: no binds, or the queue could not record it.
    Denied(String),
    /// The text or an address does not fit a `submit_sm` as asked.
    Unencodable(String),
    /// The SMSC answered a part with this `command_status`.
    Status(u32),
    /// A part went and no answer came in time: the SMSC may have it.
    Timeout,
    /// No bind is up: the SMSC's refusal of the last bind, if it answered.
    Unbound(Option<u32>, String),
    /// No room in the window or the rate before the deadline: not sent.
    Busy,
}

/// `command_status` values the host acts on.
pub mod status {
    /// Too fast: nothing was taken; pause the bind.
    pub const THROTTLED: u32 = 0x58;
    /// The SMSC's queue for this ESME is full: pause the bind.
    pub const QUEUE_FULL: u32 = 0x14;

    /// Whether a status means "slow down and send it again".
    pub fn is_pause(status: u32) -> bool {
        matches!(status, THROTTLED | QUEUE_FULL)
    }
}
