//! What an import says about the properties it did not carry over: the [`Note`] type, and what
//! each property the gate has no key for means for relay (metadata, a setting with no bearing
//! on relay, or a mail-flow setting the gate cannot represent).

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// One property (or one entry of a multi-valued property) that was not translated as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The connector's `Name`, or the accepted domain's `DomainName` (what identifies it in the
    /// TOML).
    pub object: String,
    /// The property name as the input spells it.
    pub property: String,
    /// The value as compact JSON (strings quoted), for a multi-valued property the one entry.
    pub value: String,
    pub kind: NoteKind,
    /// Why, and what the TOML holds instead.
    pub reason: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} = {} ({}): {}",
            self.object, self.property, self.value, self.kind, self.reason
        )
    }
}

/// How much a note matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteKind {
    /// Metadata, a setting with no bearing on relay, or a mail-flow setting at its default.
    Ignored,
    /// Affects mail flow but relaygate cannot represent it, or a value Exchange Online itself
    /// would refuse; the gate will differ from Exchange Online here.
    Unsupported,
}

impl fmt::Display for NoteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NoteKind::Ignored => "ignored",
            NoteKind::Unsupported => "unsupported",
        })
    }
}

/// A note about `object`'s `property`, whose value (or entry) printed as `json`.
pub(super) fn note(
    object: &str,
    property: &str,
    json: &Value,
    kind: NoteKind,
    reason: impl Into<String>,
) -> Note {
    Note {
        object: object.to_string(),
        property: property.to_string(),
        value: json.to_string(),
        kind,
        reason: reason.into(),
    }
}

/// What a property that is not translated means for relay.
#[derive(Clone, Copy)]
pub(super) enum Other {
    /// No bearing on which mail is accepted or relayed, whatever its value.
    Ignored(&'static str),
    /// Changes mail flow in Exchange Online; relaygate cannot represent it. At its default
    /// value (null, false, empty) it changes nothing.
    MailFlow(&'static str),
}

pub(super) const METADATA: &str = "metadata, no bearing on relay";
pub(super) const AT_DEFAULT: &str =
    "a mail-flow setting at its default value, which changes nothing";
pub(super) const UNKNOWN: &str = "unknown property: relaygate does not know what it does";
const SIGN_IN: &str = "sign-in and federation, no bearing on mail flow";
const ENHANCED_FILTERING: &str =
    "Enhanced Filtering for Connectors; relaygate does no spam filtering";

/// Metadata both cmdlets print (Active Directory bookkeeping, PowerShell remoting, free text).
const COMMON_METADATA: &[&str] = &[
    "Identity",
    "Id",
    "Guid",
    "DistinguishedName",
    "WhenCreated",
    "WhenChanged",
    "WhenCreatedUTC",
    "WhenChangedUTC",
    "ExchangeVersion",
    "ObjectState",
    "IsValid",
    "OrganizationId",
    "OrganizationalUnitRoot",
    "OriginatingServer",
    "ObjectCategory",
    "ObjectClass",
    "PSComputerName",
    "RunspaceId",
    "PSShowComputerName",
    "Comment",
    "AdminDisplayName",
    "ExchangeObjectId",
];

/// `Get-InboundConnector` properties the schema has no key for.
pub(super) const CONNECTOR_OTHER: &[(&str, Other)] = &[
    (
        "ConnectorSource",
        Other::Ignored("how the connector was created (admin centre, Hybrid Configuration Wizard, migration): metadata"),
    ),
    (
        "TreatMessagesAsInternal",
        Other::MailFlow("Exchange Online treats mail on this connector as internal to the organisation; relaygate has no equivalent"),
    ),
    (
        "CloudServicesMailEnabled",
        Other::MailFlow("hybrid cross-premises headers (X-MS-Exchange-Organization-*) are kept on this connector; relaygate has no equivalent"),
    ),
    (
        "AssociatedAcceptedDomains",
        Other::MailFlow("Exchange Online uses this connector only for mail from these accepted domains; relaygate uses it for every sender, more widely than Exchange Online"),
    ),
    (
        "TrustedOrganizations",
        Other::MailFlow("mail from these other Microsoft 365 organisations is trusted on this connector; relaygate has no equivalent"),
    ),
    (
        "ClientHostNames",
        Other::MailFlow("Exchange Online recognises the sender by host name; relaygate matches by IP address and certificate name only"),
    ),
    (
        "ScanAndDropRecipients",
        Other::MailFlow("Exchange Online scans and drops mail to these recipients; relaygate has no equivalent"),
    ),
    ("EFSkipIPs", Other::MailFlow(ENHANCED_FILTERING)),
    ("EFSkipLastIP", Other::MailFlow(ENHANCED_FILTERING)),
    ("EFSkipMailGateway", Other::MailFlow(ENHANCED_FILTERING)),
    ("EFUsers", Other::MailFlow(ENHANCED_FILTERING)),
    ("EFTestMode", Other::MailFlow(ENHANCED_FILTERING)),
];

/// `Get-AcceptedDomain` properties the schema has no key for.
pub(super) const DOMAIN_OTHER: &[(&str, Other)] = &[
    (
        "Name",
        Other::Ignored("a label; the domain is identified by DomainName"),
    ),
    (
        "Default",
        Other::Ignored("the domain Exchange uses in addresses it creates itself; no bearing on what is accepted or relayed"),
    ),
    (
        "InitialDomain",
        Other::Ignored("the tenant's first .onmicrosoft.com domain; accepted like any other"),
    ),
    (
        "IsCoexistenceDomain",
        Other::Ignored("the hybrid coexistence (.mail.onmicrosoft.com) domain; accepted like any other"),
    ),
    (
        "AddressBookEnabled",
        Other::Ignored("recipient filtering (Directory-Based Edge Blocking, 5.4.1): relaygate applies it only with a `recipients` list, which this export does not carry"),
    ),
    ("PerimeterDuplicateDetected", Other::Ignored(METADATA)),
    ("AuthenticationType", Other::Ignored(SIGN_IN)),
    ("LiveIdInstanceType", Other::Ignored(SIGN_IN)),
    ("FederatedOrganizationLink", Other::Ignored(SIGN_IN)),
    ("PendingFederatedAccountNamespace", Other::Ignored(SIGN_IN)),
    ("PendingFederatedDomain", Other::Ignored(SIGN_IN)),
    ("IsDefaultFederatedDomain", Other::Ignored(SIGN_IN)),
    ("EnableNego2Authentication", Other::Ignored(SIGN_IN)),
    ("DualProvisioningEnabled", Other::Ignored(SIGN_IN)),
    (
        "PendingRemoval",
        Other::MailFlow("the domain is being removed from Exchange Online; relaygate keeps accepting it"),
    ),
    (
        "PendingCompletion",
        Other::MailFlow("the domain is not fully set up in Exchange Online; relaygate accepts it already"),
    ),
    (
        "OutboundOnly",
        Other::MailFlow("Exchange Online accepts no inbound mail for an outbound-only domain; relaygate does"),
    ),
    (
        "CatchAllRecipientID",
        Other::MailFlow("a catch-all recipient; relaygate has no equivalent"),
    ),
    (
        "MailFlowPartner",
        Other::MailFlow("mail for the domain is routed through a partner; relaygate has no equivalent"),
    ),
];

/// Null, false, empty string, empty list or empty object: what Exchange prints for a setting
/// nobody set.
fn is_default(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::Number(_) => false,
    }
}

/// A note for every property the gate has no key for (`other`, as the input spells them, in
/// the order of their names), classified by `specific` (the cmdlet's own) and the metadata
/// both cmdlets print; a name in neither is unknown, so Unsupported.
pub(super) fn note_other(
    other: &BTreeMap<String, Value>,
    object: &str,
    specific: &[(&str, Other)],
    notes: &mut Vec<Note>,
) {
    for (name, value) in other {
        let (kind, reason) = if COMMON_METADATA.iter().any(|m| m.eq_ignore_ascii_case(name)) {
            (NoteKind::Ignored, METADATA)
        } else {
            match specific.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                Some((_, Other::Ignored(reason))) => (NoteKind::Ignored, *reason),
                Some((_, Other::MailFlow(_))) if is_default(value) => {
                    (NoteKind::Ignored, AT_DEFAULT)
                }
                Some((_, Other::MailFlow(reason))) => (NoteKind::Unsupported, *reason),
                None => (NoteKind::Unsupported, UNKNOWN),
            }
        };
        notes.push(note(object, name, value, kind, reason));
    }
}
