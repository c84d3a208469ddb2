//! Email delivery over SMTP with lettre: plain, STARTTLS or implicit TLS, optional AUTH; the
//! subject and body come from templates, the Message-ID from the notification id (so a mail
//! client can fold a duplicate sent after a crash).
//!
//! It must never retry forever a message the server refused for good: a permanent 5xx answer
//! is reported as permanent, while a refused connection, a timeout or a 4xx is transient.

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::template::{DEFAULT_BODY, DEFAULT_SUBJECT, RenderContext, Template};
use super::{DeliveryError, Notification, NotifierBuildError};
use crate::config::alert::{EmailConfig, SmtpTls};

/// Sends one mail per notification to every configured recipient.
pub struct EmailNotifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    subject: Template,
    body: Template,
    external_url: String,
    smarthost: String,
}

impl std::fmt::Debug for EmailNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailNotifier")
            .field("smarthost", &self.smarthost)
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

fn parse_mailbox(text: &str, key: &str) -> Result<Mailbox, NotifierBuildError> {
    text.parse::<Mailbox>()
        .map_err(|error| NotifierBuildError(format!("email.{key}: {text:?}: {error}")))
}

impl EmailNotifier {
    pub fn new(config: &EmailConfig, external_url: &str) -> Result<Self, NotifierBuildError> {
        let (host, port) = config
            .smarthost
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
            .ok_or_else(|| {
                NotifierBuildError(format!(
                    "email.smarthost: expected \"host:port\"; got {:?}",
                    config.smarthost
                ))
            })?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let tls_parameters = || {
            TlsParameters::builder(host.to_owned())
                .dangerous_accept_invalid_certs(config.tls_insecure_skip_verify)
                .dangerous_accept_invalid_hostnames(config.tls_insecure_skip_verify)
                .build()
                .map_err(|error| NotifierBuildError(format!("email.tls: {error}")))
        };
        let tls = match config.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Starttls => Tls::Required(tls_parameters()?),
            SmtpTls::Tls => Tls::Wrapper(tls_parameters()?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .timeout(Some(config.timeout.0));
        if let Some(name) = &config.hello_name {
            builder = builder.hello_name(ClientId::Domain(name.clone()));
        }
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        let template = |source: Option<&String>, default: &str, key: &str| {
            Template::parse(source.map_or(default, String::as_str))
                .map_err(|error| NotifierBuildError(format!("email.{key}: {error}")))
        };
        Ok(EmailNotifier {
            transport: builder.build(),
            from: parse_mailbox(&config.from, "from")?,
            to: config
                .to
                .iter()
                .map(|to| parse_mailbox(to, "to"))
                .collect::<Result<_, _>>()?,
            subject: template(config.subject.as_ref(), DEFAULT_SUBJECT, "subject")?,
            body: template(config.body.as_ref(), DEFAULT_BODY, "body")?,
            external_url: external_url.to_owned(),
            smarthost: config.smarthost.clone(),
        })
    }

    /// Builds the message (exposed for tests and previews).
    pub fn message(&self, notification: &Notification) -> Result<Message, DeliveryError> {
        let context = RenderContext {
            notification,
            external_url: &self.external_url,
        };
        // A header cannot hold a line break; a template that renders one is folded to spaces.
        let subject = self
            .subject
            .render(&context)
            .split(['\r', '\n'])
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .message_id(Some(message_id(&notification.id)))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder
            .body(self.body.render(&context))
            .map_err(|error| DeliveryError::permanent(format!("cannot build the mail: {error}")))
    }

    pub async fn send(&self, notification: &Notification) -> Result<(), DeliveryError> {
        let message = self.message(notification)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(error) => Err(classify(&self.smarthost, &error)),
        }
    }
}

fn classify(smarthost: &str, error: &lettre::transport::smtp::Error) -> DeliveryError {
    let mut message = format!("smtp {smarthost}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    if error.is_permanent() {
        DeliveryError::permanent(message)
    } else {
        DeliveryError::transient(message)
    }
}

/// `<id@monitor-alert-manager>` with the id reduced to the characters a Message-ID allows.
fn message_id(id: &str) -> String {
    let local: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("<{}@monitor-alert-manager>", local.trim_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::message_id;

    #[test]
    fn message_id_is_stable_and_valid() {
        assert_eq!(
            message_id("ops:{x=\"y\"} 1"),
            "<ops_{x=_y_}_1@monitor-alert-manager>"
        );
    }
}
