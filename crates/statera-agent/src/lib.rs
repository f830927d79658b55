//! The data plane in a process of its own (`statera agent`) and how the
//! controller drives it.
//!
//! - [`proto`]: the gRPC protocol (service `statera.agent.v1.Agent`).
//! - [`pki`]: the agents' certificate authority in the controller's data
//!   directory: one-time enrolment tokens, certificates issued from CSRs,
//!   the register of issued certificates and revocations.
//! - [`hub`]: the controller's side: the gRPC server agents connect to
//!   (mutual TLS; a certificate not in the register, or revoked, is
//!   refused) and [`hub::RemotePlane`], the `DataPlane` that sends a load
//!   balancer's configuration to the agent serving it and waits for its
//!   acknowledgement.
//! - [`agent`]: the agent's side: enrolment, the session (reconnecting by
//!   itself), applying what it is sent to its local data planes, which keep
//!   serving the last acknowledged configuration while no controller is
//!   connected.

pub mod agent;
pub mod hub;
pub mod pki;
pub mod plumbing;
pub mod proto;

/// The name the controller's agent endpoint presents in its certificate;
/// agents check it (not the address they dial).
pub const CONTROLLER_NAME: &str = "statera-controller";
