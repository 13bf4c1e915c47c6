//! Errors in OpenAI's shape, `{"error":{"message","type","param","code"}}`, so the
//! official clients raise their own exception types (they go by the status code).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
        }
    }

    /// 400 `invalid_request_error`.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// 400 naming the offending field.
    pub fn param(param: &str, message: impl Into<String>) -> ApiError {
        ApiError::invalid(message).with_param(param)
    }

    /// 400 for a feature a later version will have: says so instead of ignoring it.
    pub fn unsupported(param: &str, what: &str) -> ApiError {
        ApiError::param(param, format!("{what} is not supported yet by wisp serve"))
            .with_code("unsupported_parameter")
    }

    pub fn with_param(mut self, param: &str) -> ApiError {
        self.param = Some(param.to_string());
        self
    }

    pub fn with_code(mut self, code: &'static str) -> ApiError {
        self.code = Some(code);
        self
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    pub fn busy(waiting: usize) -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            format!(
                "the server is busy: every session is generating and {waiting} requests are \
                 waiting (--parallel, --queue); retry later"
            ),
        )
        .with_code("rate_limit_exceeded")
    }

    /// The JSON body, also sent as an event when a stream fails after its headers.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl From<wisp::Error> for ApiError {
    fn from(e: wisp::Error) -> ApiError {
        match e {
            wisp::Error::ContextFull { needed, n_ctx } => ApiError::param(
                "messages",
                format!(
                    "the prompt is {needed} tokens but the context holds {n_ctx}; shorten it \
                     (or start the server with a larger --ctx-size)"
                ),
            )
            .with_code("context_length_exceeded"),
            wisp::Error::InvalidRequest(m) => ApiError::invalid(m),
            wisp::Error::Template(m) => ApiError::invalid(format!("chat template: {m}")),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body())).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}
