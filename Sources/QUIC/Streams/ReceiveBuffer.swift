// Reassembly of a byte stream from out-of-order frames (RFC 9000 §2.2): data is delivered to the
// reader in order, duplicates are ignored, and the final size is checked (§4.5).

struct ReceiveBuffer {
    /// Contiguous bytes ready for the reader, starting at offset `readOffset`.
    private var ready: [UInt8] = []
    private var readyStart = 0
    private(set) var readOffset: UInt64 = 0
    /// Out-of-order chunks keyed by offset (all above the contiguous end).
    private var pending: [UInt64: ArraySlice<UInt8>] = [:]
    /// Offset one past the contiguous data.
    private(set) var contiguousEnd: UInt64 = 0
    /// Highest offset received (flow control counts this, RFC 9000 §4.5).
    private(set) var highestOffset: UInt64 = 0
    private(set) var finalSize: UInt64?

    var readableBytes: Int { ready.count - readyStart }
    /// Bytes held: unread contiguous data plus every out-of-order chunk (as stored).
    var bufferedBytes: Int { readableBytes + pending.values.reduce(0) { $0 + $1.count } }
    var outOfOrderChunks: Int { pending.count }
    var isFinished: Bool { finalSize != nil && readOffset == finalSize! }
    var allDataReceived: Bool { finalSize != nil && contiguousEnd == finalSize! }

    /// Inserts data at `offset`. Throws FINAL_SIZE_ERROR per RFC 9000 §4.5.
    mutating func insert(offset: UInt64, data: ArraySlice<UInt8>, fin: Bool) throws {
        let end = offset + UInt64(data.count)
        if let fs = finalSize {
            // RFC 9000 §4.5: data beyond the final size, or a different final size, is an error.
            if end > fs || (fin && end != fs) { throw TransportError(.finalSizeError, "data beyond final size") }
        }
        if fin {
            if end < highestOffset { throw TransportError(.finalSizeError, "final size below received data") }
            finalSize = end
        }
        highestOffset = max(highestOffset, end)
        guard end > contiguousEnd else { return }  // duplicate
        var start = offset
        var chunk = data
        if start < contiguousEnd {
            chunk = chunk.dropFirst(Int(contiguousEnd - start))
            start = contiguousEnd
        }
        if start == contiguousEnd {
            ready.append(contentsOf: chunk)
            contiguousEnd += UInt64(chunk.count)
            drainPending()
        } else {
            storePending(start: start, chunk)
        }
    }

    /// Keeps out-of-order chunks disjoint, so that they never hold more bytes than the offsets
    /// they cover (at most the flow-control window): a peer resending overlapping ranges at
    /// shifted offsets would otherwise make the buffer grow without bound.
    private mutating func storePending(start origin: UInt64, _ chunk: ArraySlice<UInt8>) {
        var start = origin
        var end = origin + UInt64(chunk.count)
        for (off, existing) in pending {
            let existingEnd = off + UInt64(existing.count)
            guard off < end && existingEnd > start else { continue }
            if off <= start && existingEnd >= end { return }  // already held
            if off >= start && existingEnd <= end {
                pending[off] = nil  // covered by the new chunk
            } else if off < start {
                start = existingEnd  // overlaps the new chunk's head
            } else {
                end = off  // overlaps its tail
            }
        }
        guard start < end else { return }
        let from = chunk.startIndex + Int(start - origin)
        pending[start] = chunk[from..<(from + Int(end - start))]
    }

    private mutating func drainPending() {
        while !pending.isEmpty {
            // Find a chunk that starts at or before the contiguous end and extends it.
            var progressed = false
            for (off, chunk) in pending where off <= contiguousEnd {
                pending[off] = nil
                let end = off + UInt64(chunk.count)
                if end > contiguousEnd {
                    ready.append(contentsOf: chunk.dropFirst(Int(contiguousEnd - off)))
                    contiguousEnd = end
                }
                progressed = true
            }
            if !progressed { break }
        }
    }

    /// Reads up to `max` bytes.
    mutating func read(max: Int) -> [UInt8] {
        let n = min(max, readableBytes)
        guard n > 0 else { return [] }
        let out = Array(ready[readyStart..<(readyStart + n)])
        readyStart += n
        readOffset += UInt64(n)
        if readyStart == ready.count {
            ready.removeAll(keepingCapacity: true)
            readyStart = 0
        } else if readyStart > 65536 {
            ready.removeFirst(readyStart)
            readyStart = 0
        }
        return out
    }

    /// Reads everything available as a slice-free copy (used for CRYPTO data handed to TLS).
    mutating func readAll() -> [UInt8] { read(max: readableBytes) }
}
