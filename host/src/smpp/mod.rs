//! SMPP, the second transport through the egress gate: the host owns each
//! bind to an SMSC and adapters speak through an `smpp` import (issue 28).
//! So far: reading the delivery receipts SMSCs send, and matching their
//! message ids to the submits they answer.

pub mod receipt;
