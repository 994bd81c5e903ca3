//! gzip on every core, with bytes that do not depend on how many there are.
//!
//! The input is cut into fixed 1 MiB chunks. Each chunk is deflated on its own (no shared
//! history), ended by a sync flush that byte-aligns it, so the chunks laid end to end form
//! one valid deflate stream; the last chunk closes it. The chunks are compressed on as many
//! threads as the machine has, but the cut points never move, so one core or sixteen give
//! the same file. Losing the 32 KiB history at each cut costs a few hundred bytes per MiB.
//!
//! ```text
//!  data ─► [chunk 0][chunk 1]…[chunk n]      (1 MiB each, the last shorter)
//!            │ sync    │ sync     │ finish    (deflated in parallel)
//!  gzip ═  header ‖ d0 ‖ d1 ‖ … ‖ dn ‖ crc32(data) ‖ len(data)   (RFC 1952, one member)
//! ```

use flate2::{Compress, Compression, FlushCompress, Status};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where the input is cut. Fixed: part of what makes the output reproducible.
const CHUNK: usize = 1 << 20;

/// RFC 1952 header: magic, deflate, no flags, no time, no extra flags, unknown OS.
pub const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// How a deflate stream handed back by [`deflate`] ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Byte-aligned, not final: more deflate data may be appended after it.
    Open,
    /// The final block: the stream is complete.
    Closed,
}

/// `data` gzipped at `level` as one member, without file name or time.
pub fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    let body = deflate(data, level, End::Closed);
    let mut out = Vec::with_capacity(body.len() + 18);
    out.extend_from_slice(&GZIP_HEADER);
    out.extend_from_slice(&body);
    out.extend_from_slice(&gzip_trailer(crc32fast::hash(data), data.len() as u64));
    out
}

/// The 8 bytes that end a gzip member: the CRC-32 and the length (mod 2³²) of its data.
pub fn gzip_trailer(crc: u32, length: u64) -> [u8; 8] {
    let mut trailer = [0u8; 8];
    trailer[..4].copy_from_slice(&crc.to_le_bytes());
    trailer[4..].copy_from_slice(&(length as u32).to_le_bytes());
    trailer
}

/// Raw deflate of `data` at `level`, chunk by chunk on every core, ended as `end` says.
pub fn deflate(data: &[u8], level: u32, end: End) -> Vec<u8> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    deflate_on(data, level, end, cores)
}

/// [`deflate`] on at most `threads` threads.
fn deflate_on(data: &[u8], level: u32, end: End, threads: usize) -> Vec<u8> {
    let chunks: Vec<&[u8]> = if data.is_empty() {
        vec![data]
    } else {
        data.chunks(CHUNK).collect()
    };
    let last = chunks.len() - 1;
    let flush_of = |index: usize| match end {
        End::Closed if index == last => FlushCompress::Finish,
        _ => FlushCompress::Sync,
    };
    let workers = threads.min(chunks.len());
    if workers <= 1 {
        return chunks
            .iter()
            .enumerate()
            .flat_map(|(i, chunk)| deflate_chunk(chunk, level, flush_of(i)))
            .collect();
    }
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, Vec<u8>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(chunk) = chunks.get(index) else {
                            return mine;
                        };
                        mine.push((index, deflate_chunk(chunk, level, flush_of(index))));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().expect("a deflate worker does not panic"))
            .collect()
    });
    done.sort_by_key(|(index, _)| *index);
    let mut out = Vec::with_capacity(done.iter().map(|(_, d)| d.len()).sum());
    for (_, part) in done {
        out.extend_from_slice(&part);
    }
    out
}

/// One chunk, deflated from an empty history and ended by `flush`.
fn deflate_chunk(data: &[u8], level: u32, flush: FlushCompress) -> Vec<u8> {
    let mut compress = Compress::new(Compression::new(level), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 4096);
    loop {
        if out.capacity() - out.len() < 64 * 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = compress.total_in() as usize;
        let status = compress
            .compress_vec(&data[consumed..], &mut out, flush)
            .expect("deflate takes any input");
        let all_in = compress.total_in() as usize == data.len();
        let done = match flush {
            FlushCompress::Finish => status == Status::StreamEnd,
            // The flush is complete when it left room in the output.
            _ => all_in && out.len() < out.capacity(),
        };
        if done {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Data that compresses somewhat, like a tar of code and libraries.
    fn sample(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_u32;
        (0..len)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                if i % 7 < 4 {
                    b"import os\n"[i % 10]
                } else {
                    state as u8
                }
            })
            .collect()
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn round_trips_across_chunk_boundaries_and_empty_input() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12_345] {
            let data = sample(len);
            let gz = gzip(&data, 6);
            assert_eq!(gunzip(&gz), data, "length {len}");
            assert_eq!(&gz[..10], &GZIP_HEADER);
        }
    }

    #[test]
    fn the_bytes_do_not_depend_on_the_number_of_threads() {
        let data = sample(4 * CHUNK + 99);
        let one = deflate_on(&data, 6, End::Closed, 1);
        for threads in [2, 3, 8] {
            assert_eq!(
                deflate_on(&data, 6, End::Closed, threads),
                one,
                "{threads} threads"
            );
        }
        assert_eq!(deflate(&data, 6, End::Closed), one);
    }

    #[test]
    fn an_open_stream_can_be_continued() {
        let (head, tail) = (sample(2 * CHUNK + 5), sample(777));
        let mut body = deflate(&head, 6, End::Open);
        body.extend(deflate(&tail, 6, End::Closed));
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head);
        crc.update(&tail);
        let length = (head.len() + tail.len()) as u64;
        let gz = [
            &GZIP_HEADER[..],
            &body,
            &gzip_trailer(crc.finalize(), length),
        ]
        .concat();
        assert_eq!(gunzip(&gz), [head, tail].concat());
    }
}
