//! The agent protocol's gRPC service code, described in Rust (the messages
//! are prost structs in src/proto.rs), so building needs no protoc.

fn main() {
    let codec = "tonic_prost::ProstCodec";
    let method = |name: &str, route: &str, input: &str, output: &str| {
        tonic_build::manual::Method::builder()
            .name(name)
            .route_name(route)
            .input_type(input)
            .output_type(output)
            .codec_path(codec)
    };
    let service = tonic_build::manual::Service::builder()
        .name("Agent")
        .package("statera.agent.v1")
        .method(
            method(
                "enroll",
                "Enroll",
                "crate::proto::EnrollRequest",
                "crate::proto::EnrollResponse",
            )
            .build(),
        )
        .method(
            method(
                "session",
                "Session",
                "crate::proto::AgentMessage",
                "crate::proto::ControllerMessage",
            )
            .client_streaming()
            .server_streaming()
            .build(),
        )
        .build();
    tonic_build::manual::Builder::new().compile(&[service]);
    println!("cargo:rerun-if-changed=build.rs");
}
