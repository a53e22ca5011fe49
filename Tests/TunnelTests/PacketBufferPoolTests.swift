// The tunnel engine's packet buffers: a free list with a reference count per buffer, no
// allocation after the pool is made, and a clear failure instead of a shared buffer when full.
import XCTest

@testable import Tunnel

final class PacketBufferPoolTests: XCTestCase {
    func testBuffersComeBackWhenTheLastReferenceGoes() throws {
        let pool = PacketBufferPool(count: 2, bufferSize: 64)
        let a = try XCTUnwrap(pool.allocate())
        pool.retain(a)  // a redundant copy on a second path
        pool.release(a)
        XCTAssertEqual(pool.available, 1, "still referenced once")
        pool.release(a)
        XCTAssertEqual(pool.available, 2)
    }

    func testAFullPoolSaysSo() throws {
        let pool = PacketBufferPool(count: 1, bufferSize: 64)
        let a = try XCTUnwrap(pool.allocate())
        XCTAssertNil(pool.allocate(), "no buffer is handed out twice")
        pool.release(a)
        XCTAssertNotNil(pool.allocate())
    }

    func testBytesStayWithTheirBuffer() throws {
        let pool = PacketBufferPool(count: 3, bufferSize: 16)
        let a = try XCTUnwrap(pool.allocate())
        let b = try XCTUnwrap(pool.allocate())
        pool.withBuffer(a) { $0.copyBytes(from: [1, 2, 3]) }
        pool.setLength(a, 3)
        pool.withBuffer(b) { $0.copyBytes(from: [9, 9]) }
        pool.setLength(b, 2)
        XCTAssertEqual(pool.withBytes(a) { Array($0) }, [1, 2, 3])
        XCTAssertEqual(pool.withBytes(b) { Array($0) }, [9, 9])
    }
}
