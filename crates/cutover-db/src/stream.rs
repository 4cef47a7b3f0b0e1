//! Row streams: the only way rows move through cutover, one at a time, with
//! back-pressure all the way to the database.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::Stream;
use futures_util::stream::BoxStream;

use crate::error::Result;
use crate::schema::Column;
use crate::value::Value;

/// One row: values in the order of [`RowStream::columns`].
pub type Row = Vec<Value>;

/// A stream of rows with the columns they belong to.
pub struct RowStream {
    columns: Arc<[Column]>,
    inner: BoxStream<'static, Result<Row>>,
}

impl std::fmt::Debug for RowStream {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RowStream")
            .field("columns", &self.columns.len())
            .finish_non_exhaustive()
    }
}

impl RowStream {
    /// Wraps any stream of rows.
    pub fn new(
        columns: Vec<Column>,
        inner: impl Stream<Item = Result<Row>> + Send + 'static,
    ) -> Self {
        RowStream {
            columns: columns.into(),
            inner: Box::pin(inner),
        }
    }

    /// A stream over rows already in memory (tests and small fixtures).
    pub fn from_rows(columns: Vec<Column>, rows: Vec<Row>) -> Self {
        Self::new(
            columns,
            futures_util::stream::iter(rows.into_iter().map(Ok)),
        )
    }

    /// The columns every row has, in order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The next row, `None` at the end.
    pub async fn next(&mut self) -> Option<Result<Row>> {
        futures_util::StreamExt::next(&mut self.inner).await
    }
}

impl Stream for RowStream {
    type Item = Result<Row>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(context)
    }
}

/// Flattens batches sent by a producer thread (`blocking_send` of
/// `Vec<T>` batches over a bounded channel) into a stream of items, so that
/// memory holds at most the channel's capacity in batches. An error ends the
/// stream after it is yielded.
pub fn from_batches<T, E>(
    receiver: tokio::sync::mpsc::Receiver<std::result::Result<Vec<T>, E>>,
) -> BoxStream<'static, std::result::Result<T, E>>
where
    T: Send + 'static,
    E: Send + 'static,
{
    let start = (Some(receiver), Vec::<T>::new().into_iter());
    Box::pin(futures_util::stream::unfold(
        start,
        |(mut receiver, mut batch)| async move {
            loop {
                if let Some(item) = batch.next() {
                    return Some((Ok(item), (receiver, batch)));
                }
                match receiver.as_mut()?.recv().await? {
                    Ok(next) => batch = next.into_iter(),
                    Err(error) => return Some((Err(error), (None, Vec::new().into_iter()))),
                }
            }
        },
    ))
}
