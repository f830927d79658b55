//! The agent protocol's messages (protobuf, as prost structs). Package
//! `statera.agent.v1`, service `Agent`:
//!
//! - `Enroll(EnrollRequest) -> EnrollResponse`: an agent without a
//!   certificate trades a one-time token and a CSR for a certificate the
//!   agents' CA signed (the only call allowed without a client certificate).
//! - `Session(stream AgentMessage) -> stream ControllerMessage`: the agent's
//!   one long-lived call, under mutual TLS. The agent says `Hello` (what it
//!   serves, by load balancer and version), then sends acknowledgements,
//!   status reports and heartbeats; the controller sends whole versioned
//!   configurations to apply and load balancers to remove.
//!
//! `LbConfig` and `StatusReport` travel as their JSON (the contract
//! statera-config defines with serde), inside these protobuf envelopes.

/// The protocol version an agent and a controller speak.
pub const PROTOCOL: u32 = 1;

#[derive(Clone, PartialEq, prost::Message)]
pub struct EnrollRequest {
    #[prost(string, tag = "1")]
    pub token: String,
    /// The agent's name (its certificate's common name).
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub csr_pem: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct EnrollResponse {
    #[prost(string, tag = "1")]
    pub cert_pem: String,
    #[prost(string, tag = "2")]
    pub ca_pem: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AgentMessage {
    #[prost(oneof = "agent_message::Kind", tags = "1, 2, 3, 4")]
    pub kind: Option<agent_message::Kind>,
}

pub mod agent_message {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        #[prost(message, tag = "1")]
        Hello(super::Hello),
        #[prost(message, tag = "2")]
        Ack(super::Ack),
        /// A `StatusReport`, as JSON.
        #[prost(bytes, tag = "3")]
        Report(Vec<u8>),
        #[prost(message, tag = "4")]
        Heartbeat(super::Heartbeat),
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Hello {
    #[prost(uint32, tag = "1")]
    pub protocol: u32,
    /// The agent's build (`statera --version`).
    #[prost(string, tag = "2")]
    pub agent_version: String,
    /// What the agent serves now: it keeps serving it while no controller
    /// is connected.
    #[prost(message, repeated, tag = "3")]
    pub served: Vec<Served>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Served {
    #[prost(string, tag = "1")]
    pub lb_id: String,
    #[prost(string, tag = "2")]
    pub provider: String,
    #[prost(uint64, tag = "3")]
    pub version: u64,
}

/// The outcome of an `Apply` or a `Remove`, by its sequence number.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Ack {
    #[prost(uint64, tag = "1")]
    pub seq: u64,
    #[prost(string, tag = "2")]
    pub lb_id: String,
    /// The version now served (an `Apply` that succeeded).
    #[prost(uint64, tag = "3")]
    pub version: u64,
    /// Empty: done. Else why not, as the data plane said it.
    #[prost(string, tag = "4")]
    pub error: String,
    /// `bind`, `unsupported`, `refused` (the agent refuses the request
    /// itself) or `other`.
    #[prost(string, tag = "5")]
    pub error_kind: String,
    /// For `bind`: the address and the listener.
    #[prost(string, tag = "6")]
    pub bind_address: String,
    #[prost(string, tag = "7")]
    pub bind_listener: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Heartbeat {
    #[prost(uint64, tag = "1")]
    pub sent_unix_ms: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ControllerMessage {
    #[prost(oneof = "controller_message::Kind", tags = "1, 2")]
    pub kind: Option<controller_message::Kind>,
}

pub mod controller_message {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        #[prost(message, tag = "1")]
        Apply(super::Apply),
        #[prost(message, tag = "2")]
        Remove(super::Remove),
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Apply {
    #[prost(uint64, tag = "1")]
    pub seq: u64,
    #[prost(string, tag = "2")]
    pub lb_id: String,
    #[prost(string, tag = "3")]
    pub provider: String,
    #[prost(uint64, tag = "4")]
    pub version: u64,
    /// The whole `LbConfig`, as JSON.
    #[prost(bytes, tag = "5")]
    pub config: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Remove {
    #[prost(uint64, tag = "1")]
    pub seq: u64,
    #[prost(string, tag = "2")]
    pub lb_id: String,
    #[prost(string, tag = "3")]
    pub provider: String,
}

include!(concat!(env!("OUT_DIR"), "/statera.agent.v1.Agent.rs"));
