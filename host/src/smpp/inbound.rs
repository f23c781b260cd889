//! What an SMSC sends on a bind by itself: delivery receipts, written to
//! the record before their `deliver_sm_resp`, with the parts of a long
//! message gathered into one status; and `unbind`.

use super::receipt::{self, id_key};
use super::session::BindStats;
use crate::config::{IdForm, SmppBinds};
use crate::outcome::DeliveryState;
use crate::record::MessageRecord;
use rusmpp::pdus::{DeliverSm, DeliverSmResp};
use rusmpp::tlvs::TlvValue;
use rusmpp::{Command, Pdu};
use rusmppc::Client;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// Long messages whose parts' receipts are matched here, newest kept.
const LONG_MESSAGES_KEPT: usize = 100_000;

/// Where one session's receipts go.
pub(super) struct Inbound {
    provider: String,
    form: IdForm,
    record: Option<Arc<dyn MessageRecord>>,
    long: Mutex<LongMessages>,
}

impl Inbound {
    pub(super) fn new(provider: &str, settings: &SmppBinds, record: Option<Arc<dyn MessageRecord>>) -> Inbound {
        Inbound { provider: provider.to_string(), form: settings.receipt_ids, record, long: Mutex::default() }
    }

    /// Notes the parts of a long message, by their ids in compared form.
    pub(super) fn long_message(&self, keys: Vec<String>) {
        self.long.lock().unwrap().add(keys);
    }

    /// Answers what the SMSC sent on its own: receipts, unbind.
    pub(super) async fn answer(&self, stats: &BindStats, client: &Client, command: Command) {
        let seq = command.sequence_number();
        match command.pdu() {
            // Not recorded: left unanswered, the SMSC sends it again.
            Some(Pdu::DeliverSm(dsm)) if self.record_receipt(dsm).await => {
                stats.receipts.fetch_add(1, Ordering::Relaxed);
                let _ = client.deliver_sm_resp(seq, DeliverSmResp::default()).await;
            }
            Some(Pdu::Unbind) => {
                let _ = client.unbind_resp(seq).await;
            }
            _ => {}
        }
    }

    /// Writes what a receipt says to the record; false when it must come again.
    async fn record_receipt(&self, dsm: &DeliverSm) -> bool {
        let mut receipted: Option<String> = None;
        let mut state: Option<u8> = None;
        for tlv in dsm.tlvs() {
            match tlv.value() {
                Some(TlvValue::ReceiptedMessageId(id)) => {
                    receipted = Some(id.as_str().trim_end_matches('\0').to_string())
                }
                Some(TlvValue::MessageState(s)) => state = Some(u8::from(*s)),
                _ => {}
            }
        }
        let Some(r) = receipt::read(dsm.short_message().as_ref(), receipted.as_deref(), state) else {
            // A message from a handset, or a receipt no one can read: taken.
            tracing::debug!(provider = %self.provider, "deliver_sm that is not a receipt");
            return true;
        };
        let update = self.long.lock().unwrap().receipt(&id_key(&r.id, self.form), r.state);
        let (Some((reference, state)), Some(record)) = (update, &self.record) else { return true };
        match record.update_status(&self.provider, &reference, state).await {
            Ok(_) => {
                crate::telemetry::smpp_receipt(&self.provider, state.as_str());
                true
            }
            Err(e) => {
                tracing::error!(provider = %self.provider, "receipt not recorded; the SMSC will send it again: {e:#}");
                false
            }
        }
    }
}

/// The parts of recent long messages, by part id.
struct LongMessages {
    /// Part key → (the message's reference, the part's index).
    parts: HashMap<String, (String, usize)>,
    /// Reference → each part's state so far.
    states: HashMap<String, Vec<Option<DeliveryState>>>,
    /// Each message's part keys, oldest first: the first to be forgotten.
    order: VecDeque<Vec<String>>,
    kept: usize,
}

impl Default for LongMessages {
    fn default() -> LongMessages {
        LongMessages { parts: HashMap::new(), states: HashMap::new(), order: VecDeque::new(), kept: LONG_MESSAGES_KEPT }
    }
}

impl LongMessages {
    fn add(&mut self, keys: Vec<String>) {
        let reference = keys[0].clone();
        for (i, key) in keys.iter().enumerate() {
            self.parts.insert(key.clone(), (reference.clone(), i));
        }
        self.states.insert(reference, vec![None; keys.len()]);
        self.order.push_back(keys);
        while self.order.len() > self.kept {
            let Some(old) = self.order.pop_front() else { break };
            self.states.remove(&old[0]);
            for key in &old {
                self.parts.remove(key);
            }
        }
    }

    /// The message a part's receipt is about and its status now, once
    /// every part has one (or one has failed). A part of no long message
    /// known here stands for its message.
    fn receipt(&mut self, key: &str, state: DeliveryState) -> Option<(String, DeliveryState)> {
        let Some((reference, index)) = self.parts.get(key).cloned() else { return Some((key.to_string(), state)) };
        let states = self.states.get_mut(&reference)?;
        states[index] = Some(state);
        let known: Vec<DeliveryState> = states.iter().flatten().copied().collect();
        let worst = receipt::worst(known.iter().copied())?;
        let failed = matches!(worst, DeliveryState::Failed | DeliveryState::Undelivered);
        (known.len() == states.len() || failed).then_some((reference, worst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_message_takes_its_worst_part_once_every_part_reported() {
        let mut long = LongMessages::default();
        long.add(vec!["a1".into(), "a2".into(), "a3".into()]);
        assert_eq!(long.receipt("a2", DeliveryState::Delivered), None);
        assert_eq!(long.receipt("a1", DeliveryState::Delivered), None);
        assert_eq!(long.receipt("a3", DeliveryState::Delivered), Some(("a1".into(), DeliveryState::Delivered)));
        long.add(vec!["b1".into(), "b2".into()]);
        assert_eq!(long.receipt("b2", DeliveryState::Undelivered), Some(("b1".into(), DeliveryState::Undelivered)));
        assert_eq!(long.receipt("c9", DeliveryState::Delivered), Some(("c9".into(), DeliveryState::Delivered)));
    }

    #[test]
    fn the_oldest_long_messages_are_forgotten_whole() {
        let mut long = LongMessages { kept: 2, ..LongMessages::default() };
        for m in ["a", "b", "c"] {
            long.add(vec![format!("{m}1"), format!("{m}2")]);
        }
        assert_eq!((long.parts.len(), long.states.len()), (4, 2));
        // A forgotten message's part stands for itself.
        assert_eq!(long.receipt("a2", DeliveryState::Delivered), Some(("a2".into(), DeliveryState::Delivered)));
        assert_eq!(long.receipt("b2", DeliveryState::Delivered), None);
    }
}
