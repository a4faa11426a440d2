import Glibc

/// recvmsg() with SCM_CREDENTIALS and SCM_RIGHTS parsed by hand (the CMSG_* macros do not reach
/// Swift): the text, the sender's pid (-1 without SO_PASSCRED) and the received fds (close-on-exec).
public func receiveDatagram(_ fd: Int32, dontWait: Bool = false) throws -> (text: String, pid: pid_t, fds: [Int32]) {
    let capacity = 4096
    let controlCapacity = 2048
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
    let control = UnsafeMutableRawPointer.allocate(byteCount: controlCapacity, alignment: 8)
    defer {
        buffer.deallocate()
        control.deallocate()
    }
    control.initializeMemory(as: UInt8.self, repeating: 0, count: controlCapacity)
    var vector = iovec(iov_base: buffer, iov_len: capacity)
    var controlLength = 0
    let length = withUnsafeMutablePointer(to: &vector) { vectorPointer -> Int in
        var message = msghdr()
        message.msg_iov = vectorPointer
        message.msg_iovlen = 1
        message.msg_control = control
        message.msg_controllen = controlCapacity
        let count = recvmsg(fd, &message, Int32(MSG_CMSG_CLOEXEC) | (dontWait ? Int32(MSG_DONTWAIT) : 0))
        if count >= 0 { controlLength = Int(message.msg_controllen) }
        return count
    }
    guard length >= 0 else { throw TestSupportError("recvmsg: \(String(cString: strerror(errno)))") }
    var pid: pid_t = -1
    var fds: [Int32] = []
    let word = MemoryLayout<Int>.size
    func aligned(_ value: Int) -> Int { (value + word - 1) & ~(word - 1) }
    let header = aligned(MemoryLayout<cmsghdr>.size)
    var offset = 0
    while offset + MemoryLayout<cmsghdr>.size <= controlLength {
        let entry = control.load(fromByteOffset: offset, as: cmsghdr.self)
        let entryLength = Int(entry.cmsg_len)
        guard entryLength >= header else { break }
        let data = offset + header
        if entry.cmsg_level == SOL_SOCKET && entry.cmsg_type == 2 /* SCM_CREDENTIALS: needs _GNU_SOURCE */ {
            pid = control.loadUnaligned(fromByteOffset: data, as: pid_t.self)
        } else if entry.cmsg_level == SOL_SOCKET && entry.cmsg_type == Int32(SCM_RIGHTS) {
            for index in 0..<((entryLength - header) / MemoryLayout<Int32>.size) {
                fds.append(control.loadUnaligned(fromByteOffset: data + index * MemoryLayout<Int32>.size, as: Int32.self))
            }
        }
        offset += aligned(entryLength)
    }
    let text = String(decoding: UnsafeRawBufferPointer(start: buffer, count: length), as: UTF8.self)
    return (text, pid, fds)
}
