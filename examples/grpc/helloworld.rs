//! The `helloworld.Greeter` service of gRPC's own examples, written by
//! hand on tonic's codegen API (what `tonic-build` would generate from
//! `helloworld.proto`, without needing `protoc`):
//!
//! ```text
//! package helloworld;
//! service Greeter { rpc SayHello (HelloRequest) returns (HelloReply) {} }
//! message HelloRequest { string name = 1; }
//! message HelloReply { string message = 1; }
//! ```

use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::codegen::{Body, BoxFuture, Bytes, GrpcMethod, Service, StdError, http};

/// The fully qualified service name.
pub const SERVICE: &str = "helloworld.Greeter";
/// The path of `SayHello`.
pub const SAY_HELLO: &str = "/helloworld.Greeter/SayHello";

/// `HelloRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloRequest {
    /// Who to greet.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `HelloReply`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReply {
    /// The greeting.
    #[prost(string, tag = "1")]
    pub message: String,
}

/// The service's methods.
#[tonic::async_trait]
pub trait Greeter: Send + Sync + 'static {
    /// `SayHello`.
    async fn say_hello(
        &self,
        request: tonic::Request<HelloRequest>,
    ) -> Result<tonic::Response<HelloReply>, tonic::Status>;
}

/// A [`Greeter`] as a tonic service.
#[derive(Debug)]
pub struct GreeterServer<T>(Arc<T>);

impl<T> GreeterServer<T> {
    /// Serves `greeter`.
    pub fn new(greeter: T) -> Self {
        GreeterServer(Arc::new(greeter))
    }
}

impl<T> Clone for GreeterServer<T> {
    fn clone(&self) -> Self {
        GreeterServer(self.0.clone())
    }
}

impl<T> tonic::server::NamedService for GreeterServer<T> {
    const NAME: &'static str = SERVICE;
}

struct SayHello<T>(Arc<T>);

impl<T: Greeter> tonic::server::UnaryService<HelloRequest> for SayHello<T> {
    type Response = HelloReply;
    type Future = BoxFuture<tonic::Response<HelloReply>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<HelloRequest>) -> Self::Future {
        let greeter = self.0.clone();
        Box::pin(async move { greeter.say_hello(request).await })
    }
}

impl<T, B> Service<http::Request<B>> for GreeterServer<T>
where
    T: Greeter,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != SAY_HELLO {
            // A method this service does not have, answered as generated
            // code does: a bare UNIMPLEMENTED.
            return Box::pin(async {
                let mut response = http::Response::new(tonic::body::Body::default());
                let headers = response.headers_mut();
                headers.insert(
                    tonic::Status::GRPC_STATUS,
                    (tonic::Code::Unimplemented as i32).into(),
                );
                headers.insert(
                    http::header::CONTENT_TYPE,
                    tonic::metadata::GRPC_CONTENT_TYPE,
                );
                Ok(response)
            });
        }
        let method = SayHello(self.0.clone());
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.unary(method, request).await)
        })
    }
}

/// A client of the service over any gRPC transport (a `Channel`, or one
/// wrapped in faultline's client layer).
#[derive(Debug, Clone)]
pub struct GreeterClient<T>(tonic::client::Grpc<T>);

impl<T> GreeterClient<T>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as Body>::Error: Into<StdError> + Send,
{
    /// A client over `transport`.
    pub fn new(transport: T) -> Self {
        GreeterClient(tonic::client::Grpc::new(transport))
    }

    /// Calls `SayHello`.
    pub async fn say_hello(
        &mut self,
        request: impl tonic::IntoRequest<HelloRequest>,
    ) -> Result<tonic::Response<HelloReply>, tonic::Status> {
        self.0
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("not ready: {}", e.into())))?;
        let mut request = request.into_request();
        request
            .extensions_mut()
            .insert(GrpcMethod::new(SERVICE, "SayHello"));
        let path = http::uri::PathAndQuery::from_static(SAY_HELLO);
        self.0
            .unary(request, path, tonic_prost::ProstCodec::default())
            .await
    }
}
