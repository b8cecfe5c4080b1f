//! An in-memory outbox for tests and examples.

use std::sync::{Arc, Mutex, PoisonError};

use crate::error::MailError;
use crate::mail::{DefaultRenderer, Mailer, Message, Rendered, Renderer};
use crate::outbox::MailId;

/// One message in a [`MemoryMailer`]'s outbox.
#[derive(Debug, Clone)]
pub struct SentMail {
    /// The message's id (the same on every try of one queued message).
    pub id: MailId,
    /// The typed message (codes redacted in `Debug`).
    pub message: Message,
    /// How the default templates render it.
    pub rendered: Rendered,
}

#[derive(Debug, Default)]
struct Inner {
    outbox: Vec<SentMail>,
    fail_next: usize,
}

/// An outbox in memory that tests and examples read. Clones share the outbox.
///
/// It can be told to fail the next sends ([`fail_next`](Self::fail_next)) to test
/// delivery failures.
#[derive(Clone)]
pub struct MemoryMailer {
    inner: Arc<Mutex<Inner>>,
    renderer: Arc<dyn Renderer>,
}

impl Default for MemoryMailer {
    fn default() -> Self {
        MemoryMailer { inner: Arc::default(), renderer: Arc::new(DefaultRenderer::default()) }
    }
}

impl std::fmt::Debug for MemoryMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryMailer").field("messages", &self.lock().outbox.len()).finish_non_exhaustive()
    }
}

impl MemoryMailer {
    /// An empty outbox rendering with the default templates.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty outbox rendering with `renderer` (e.g. a [`DefaultRenderer`] naming
    /// the product).
    pub fn with_renderer(renderer: impl Renderer + 'static) -> Self {
        MemoryMailer { inner: Arc::default(), renderer: Arc::new(renderer) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Everything sent so far, oldest first.
    pub fn outbox(&self) -> Vec<SentMail> {
        self.lock().outbox.clone()
    }

    /// The most recent backup code mailed to `email`, in display form.
    pub fn last_code_for(&self, email: &str) -> Option<String> {
        self.lock().outbox.iter().rev().find_map(|m| match &m.message {
            Message::BackupCode { to, codes, .. } if to.email == email => codes.first().map(|c| c.expose().to_owned()),
            _ => None,
        })
    }

    /// Makes the next `n` sends fail with [`MailError::Unavailable`].
    pub fn fail_next(&self, n: usize) {
        self.lock().fail_next = n;
    }

    /// Empties the outbox.
    pub fn clear(&self) {
        self.lock().outbox.clear();
    }
}

impl Mailer for MemoryMailer {
    async fn send(&self, id: MailId, message: &Message) -> Result<(), MailError> {
        let mut inner = self.lock();
        if inner.fail_next > 0 {
            inner.fail_next -= 1;
            return Err(MailError::Unavailable("simulated outage".to_owned()));
        }
        let rendered = self.renderer.render(message);
        inner.outbox.push(SentMail { id, message: message.clone(), rendered });
        Ok(())
    }
}
