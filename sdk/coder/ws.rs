//! WebSockets to Coder (`/workspacebuilds/{id}/logs?follow=true`, `/workspaces/{id}/watch-ws`),
//! which progenitor cannot generate.
//!
//! The same rules as the HTTP client: the deployment URL checked when the [`CoderClient`] was
//! built (https, or http to loopback unless `--insecure-http`), the `Coder-Session-Token`
//! header (never logged), TLS verified by the platform verifier on the same rustls as reqwest,
//! the connect timeout, and no redirect followed (a 3xx answer is an error). A message larger
//! than [`WS_MAX_MESSAGE_BYTES`] ends the connection. HTTP(S)_PROXY is not used: the socket
//! goes straight to the deployment; a caller that cannot reach it falls back to polling.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{self, Message, client::IntoClientRequest, protocol::WebSocketConfig},
};

use super::{CoderClient, types};
use crate::{
    Error, Result,
    http::{USER_AGENT, scrub, server_words},
};

/// The largest WebSocket message (and frame) fleet accepts from Coder: a whole workspace with
/// its agents, or one log line, fits many times over.
pub const WS_MAX_MESSAGE_BYTES: usize = 4 << 20;

/// A TCP stream, with or without TLS.
pub(crate) enum Transport {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// An open WebSocket to Coder.
pub(crate) type Socket = WebSocketStream<Transport>;

/// What reading a socket gave.
pub(crate) enum Read<T> {
    /// A message, decoded.
    Message(T),
    /// A text message that did not decode (the reason).
    Unreadable(String),
    /// The server closed the socket with a close frame.
    Closed,
    /// The connection ended without a close frame, or failed (the reason).
    Dropped(String),
}

/// Reads the next JSON message, answering pings on the way.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(socket: &mut Socket) -> Read<T> {
    loop {
        match socket.next().await {
            None => return Read::Dropped("the connection ended".into()),
            Some(Err(tungstenite::Error::ConnectionClosed)) => return Read::Closed,
            Some(Err(e)) => return Read::Dropped(e.to_string()),
            Some(Ok(Message::Close(_))) => return Read::Closed,
            Some(Ok(Message::Text(text))) => {
                return match serde_json::from_str(text.as_str()) {
                    Ok(v) => Read::Message(v),
                    Err(e) => Read::Unreadable(e.to_string()),
                };
            }
            Some(Ok(Message::Binary(bytes))) => {
                return match serde_json::from_slice(&bytes) {
                    Ok(v) => Read::Message(v),
                    Err(e) => Read::Unreadable(e.to_string()),
                };
            }
            Some(Ok(Message::Ping(payload))) => {
                let _ = socket.send(Message::Pong(payload)).await;
            }
            Some(Ok(_)) => {}
        }
    }
}

impl CoderClient {
    /// Opens a WebSocket to `{CODER_URL}/api/v2{path_and_query}`.
    pub(crate) async fn open_socket(&self, path_and_query: &str) -> Result<Socket> {
        let what = format!("opening the WebSocket {}", path_only(path_and_query));
        let mut url = url::Url::parse(&format!("{}/api/v2{path_and_query}", self.url))
            .map_err(|e| Error::InvalidInput(format!("{what}: not a URL: {e}")))?;
        let tls = url.scheme() == "https";
        let scheme = if tls { "wss" } else { "ws" };
        url.set_scheme(scheme)
            .map_err(|()| Error::InvalidInput(format!("{what}: cannot use {scheme}://")))?;
        let port = url
            .port_or_known_default()
            .unwrap_or(if tls { 443 } else { 80 });
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(Error::InvalidInput(format!("{what}: the URL has no host"))),
        };
        let timeout = self.http.connect_timeout;
        let tcp = tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), port)))
            .await
            .map_err(|_| Error::Transport(format!("{what}: cannot connect within {timeout:?}")))?
            .map_err(|e| Error::Transport(format!("{what}: cannot connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let stream = if tls {
            // A WebSocket upgrade is an HTTP/1.1 request.
            let config = crate::tls::client_config(&[b"http/1.1"])
                .map_err(|e| Error::Transport(format!("{what}: cannot set up TLS: {e}")))?;
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| Error::InvalidInput(format!("{what}: bad host name: {e}")))?;
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let tls = tokio::time::timeout(timeout, connector.connect(name, tcp))
                .await
                .map_err(|_| {
                    Error::Transport(format!("{what}: the TLS handshake took over {timeout:?}"))
                })?
                .map_err(|e| Error::Transport(format!("{what}: TLS: {e}")))?;
            Transport::Tls(Box::new(tls))
        } else {
            Transport::Plain(tcp)
        };
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| Error::InvalidInput(format!("{what}: {e}")))?;
        let mut token = http::HeaderValue::from_str(self.token.expose()).map_err(|_| {
            Error::InvalidInput(
                "the Coder session token has characters a header cannot carry".into(),
            )
        })?;
        token.set_sensitive(true);
        request.headers_mut().insert("coder-session-token", token);
        request.headers_mut().insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_static(USER_AGENT),
        );
        let config = WebSocketConfig::default()
            .max_message_size(Some(WS_MAX_MESSAGE_BYTES))
            .max_frame_size(Some(WS_MAX_MESSAGE_BYTES));
        let handshake = tokio_tungstenite::client_async_with_config(request, stream, Some(config));
        let (socket, _) = tokio::time::timeout(self.http.request_timeout, handshake)
            .await
            .map_err(|_| Error::Transport(format!("{what}: the server did not answer in time")))?
            .map_err(|e| self.handshake_error(&what, e))?;
        Ok(socket)
    }

    fn handshake_error(&self, what: &str, e: tungstenite::Error) -> Error {
        let secrets: Vec<&crate::Secret> = self.secrets.iter().collect();
        match e {
            tungstenite::Error::Http(resp) => {
                let status = resp.status().as_u16();
                let said = resp
                    .body()
                    .as_deref()
                    .and_then(|b| serde_json::from_slice::<types::Response>(b).ok())
                    .map(|r| server_words(r.message.as_deref(), r.detail.as_deref()))
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| format!("HTTP {status}"));
                let message = scrub(&format!("{what}: {said}"), &secrets);
                match status {
                    401 | 403 => Error::Unauthorized {
                        status,
                        message: format!(
                            "{message} (HTTP {status}: check CODER_SESSION_TOKEN for Coder)"
                        ),
                    },
                    404 => Error::NotFound { message },
                    300..=399 => Error::Api {
                        status,
                        message: format!(
                            "{message}: the server answered a redirect, which fleet does not \
                             follow (set CODER_URL to the deployment's final address)"
                        ),
                        validations: vec![],
                    },
                    _ => Error::Api {
                        status,
                        message,
                        validations: vec![],
                    },
                }
            }
            other => Error::Transport(scrub(&format!("{what}: {other}"), &secrets)),
        }
    }
}

fn path_only(path_and_query: &str) -> &str {
    path_and_query.split('?').next().unwrap_or(path_and_query)
}
