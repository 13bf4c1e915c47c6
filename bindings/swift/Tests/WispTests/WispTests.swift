// XCTests of the Swift API against the real native library and SmolLM2 on the GPU
// (lavapipe here). Run by `cargo xtask swift`, which sets WISP_MODEL and WISP_CLI.
import Foundation
import XCTest

@testable import Wisp

let env = ProcessInfo.processInfo.environment
let messages = [
    ChatMessage(role: "system", content: "You are a concise assistant."),
    ChatMessage(role: "user", content: "What is the capital of France? Answer in one sentence."),
]
let maxTokens: UInt32 = 40

func greedy(_ max: UInt32 = maxTokens) -> GenerationOptions {
    var o = greedyOptions()
    o.maxTokens = max
    return o
}

/// One engine for the whole suite (loading is the slow part).
actor Shared {
    static let shared = Shared()
    private var engine: Engine?
    func get() async throws -> Engine {
        if let e = engine { return e }
        let e = try await Engine.load(path: try modelPath(), config: EngineConfig(device: .gpu))
        engine = e
        return e
    }
}

func modelPath() throws -> String {
    guard let p = env["WISP_MODEL"] else { throw XCTSkip("set WISP_MODEL") }
    return p
}

/// `wisp run --special` on the same prompt: the reference answer.
func cliAnswer(_ prompt: String) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: env["WISP_CLI"] ?? "wisp")
    p.arguments = [
        "run", try modelPath(), "--special", "--temperature", "0",
        "--max-tokens", String(maxTokens), "--prompt", prompt,
    ]
    let pipe = Pipe()
    p.standardOutput = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    XCTAssertEqual(p.terminationStatus, 0)
    return String(decoding: data, as: UTF8.self)
}

final class Counter: TokenListener, @unchecked Sendable {
    let lock = NSLock()
    var n = 0
    let onCount: (Int) -> Bool
    init(_ onCount: @escaping (Int) -> Bool) { self.onCount = onCount }
    func onText(text: String) -> Bool {
        lock.lock()
        n += 1
        let k = n
        lock.unlock()
        return onCount(k)
    }
}

final class WispTests: XCTestCase {
    func testMissingFileIsNotFound() async throws {
        do {
            _ = try await Engine.load(path: "/nonexistent/model.gguf")
            XCTFail("expected an error")
        } catch WispError.NotFound(let detail) {
            XCTAssertTrue(detail.contains("/nonexistent/model.gguf"), detail)
        }
    }

    func testCorruptFileIsInvalidModel() async throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("corrupt-\(getpid()).gguf")
        try Data("GGUF but not really a model".utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        do {
            _ = try await Engine.load(path: url.path)
            XCTFail("expected an error")
        } catch WispError.InvalidModel {
        }
    }

    func testWrongSha256IsChecksumMismatch() async throws {
        let wrong = String(repeating: "ab", count: 32)
        do {
            _ = try await Engine.load(path: try modelPath(), sha256: wrong) { stage, _, _ in
                XCTAssertEqual(stage, .verifying)
            }
            XCTFail("expected an error")
        } catch WispError.ChecksumMismatch(let expected, let actual) {
            XCTAssertEqual(expected, wrong)
            XCTAssertEqual(actual.count, 64)
        }
    }

    func testLoadWithProgress() async throws {
        let seen = Counter { _ in true }
        final class Last: @unchecked Sendable { var done: UInt64 = 0; var total: UInt64 = 0 }
        let last = Last()
        let engine = try await Engine.load(path: try modelPath(), config: EngineConfig(device: .gpu)) { stage, done, total in
            XCTAssertEqual(stage, .loading)
            last.done = done
            last.total = total
            _ = seen.onText(text: "")
        }
        XCTAssertGreaterThan(seen.n, 0)
        XCTAssertTrue(last.total > 0 && last.done == last.total)
        let info = engine.info()
        XCTAssertEqual(info.architecture, "llama")
        XCTAssertEqual(info.vocabSize, 49152)
        XCTAssertNotEqual(info.device, "cpu")
        XCTAssertEqual(info.engine, "gpu")
    }

    func testAutoAndCpuEngines() async throws {
        // Auto takes a hardware GPU, else the CPU engine (a software adapter such as
        // lavapipe counts as none), and says why.
        let auto = try await Engine.load(path: try modelPath(), config: EngineConfig(contextSize: 64))
        let info = auto.info()
        XCTAssertTrue(info.engineReason.hasPrefix("auto:"), info.engineReason)
        XCTAssertTrue(["gpu", "cpu"].contains(info.engine), info.engine)
        let cpu = try await Engine.load(
            path: try modelPath(), config: EngineConfig(device: .cpu, threads: 2, contextSize: 64))
        XCTAssertEqual(cpu.info().engine, "cpu")
        XCTAssertTrue(cpu.info().engineReason.contains("2 threads"), cpu.info().engineReason)
        var text = ""
        for try await piece in cpu.complete("The capital of France is", options: greedy(8)) {
            text += piece
        }
        XCTAssertFalse(text.isEmpty)
    }

    func testCancellingTheTaskStopsALoad() async throws {
        final class Box: @unchecked Sendable {
            let lock = NSLock()
            var task: Task<Engine, Error>?
            var seen: [UInt64] = []
            var total: UInt64 = 0
        }
        let box = Box()
        let path = try modelPath()
        // Hold the lock while storing the task so the first progress call sees it.
        box.lock.lock()
        box.task = Task {
            try await Engine.load(path: path, config: EngineConfig(device: .gpu)) { _, done, total in
                box.lock.lock()
                box.seen.append(done)
                box.total = total
                let (n, task) = (box.seen.count, box.task)
                box.lock.unlock()
                if n == 2 { task?.cancel() }
            }
        }
        box.lock.unlock()
        let result = await box.task!.result
        guard case .failure(WispError.Cancelled) = result else {
            return XCTFail("expected WispError.Cancelled, got \(result)")
        }
        try await Task.sleep(nanoseconds: 500_000_000)
        box.lock.lock()
        defer { box.lock.unlock() }
        XCTAssertGreaterThanOrEqual(box.seen.count, 2)
        XCTAssertLessThan(box.seen.last ?? 0, box.total, "the load ran to the end")
    }

    func testGreedyChatMatchesCli() async throws {
        let engine = try await Shared.shared.get()
        let prompt = try engine.renderChat(messages: messages)
        XCTAssertTrue(prompt.contains("<|im_start|>assistant"))
        let expected = try cliAnswer(prompt)
        var pieces: [String] = []
        for try await piece in engine.chat(messages, options: greedy()) {
            pieces.append(piece)
        }
        XCTAssertGreaterThan(pieces.count, 3, "expected streaming")
        XCTAssertEqual(pieces.joined(), expected)
        XCTAssertTrue(expected.contains("Paris"), expected)
        var raw = ""
        for try await piece in engine.complete(prompt, options: greedy()) {
            raw += piece
        }
        XCTAssertEqual(raw, expected)
    }

    func testUsage() async throws {
        let engine = try await Shared.shared.get()
        let c = try await engine.chatAsync(messages: messages, options: greedy(4), listener: nil)
        XCTAssertEqual(c.finishReason, .length)
        XCTAssertEqual(c.usage.completionTokens, 4)
        XCTAssertGreaterThan(c.usage.promptTokens, 10)
        XCTAssertGreaterThan(c.usage.timeToFirstTokenMs, 0)
        XCTAssertGreaterThan(c.usage.decodeTokensPerSecond, 0)
    }

    func testBreakingOutOfTheStreamStopsGeneration() async throws {
        let engine = try await Shared.shared.get()
        var n = 0
        for try await _ in engine.chat(messages, options: greedy(200)) {
            n += 1
            if n == 2 { break }
        }
        XCTAssertEqual(n, 2)
        // The engine is free again at once (generation stopped, the session lock released).
        let c = try engine.chat(messages: messages, options: greedy(4), listener: nil)
        XCTAssertEqual(c.usage.completionTokens, 4)
    }

    func testCancellingTheTaskStopsGeneration() async throws {
        let engine = try await Shared.shared.get()
        let task = Task {
            var n = 0
            for try await _ in engine.complete("Once upon a time", options: greedy(200)) {
                n += 1
            }
            return n
        }
        try await Task.sleep(nanoseconds: 300_000_000)
        task.cancel()
        _ = try? await task.value
        let c = try engine.complete(prompt: "Once upon a time", options: greedy(3), listener: nil)
        XCTAssertEqual(c.usage.completionTokens, 3)
    }

    func testListenerAndEngineCancel() async throws {
        let engine = try await Shared.shared.get()
        let c = try engine.complete(
            prompt: "Once upon a time", options: greedy(200), listener: Counter { $0 < 3 })
        XCTAssertEqual(c.finishReason, .cancelled)
        XCTAssertLessThan(c.usage.completionTokens, 10)
        let c2 = try engine.complete(
            prompt: "Once upon a time", options: greedy(200),
            listener: Counter { n in
                if n == 3 {
                    let t = Thread { engine.cancel() }
                    t.start()
                    while !t.isFinished { usleep(1000) }
                }
                return true
            })
        XCTAssertEqual(c2.finishReason, .cancelled)
        XCTAssertLessThan(c2.usage.completionTokens, 20)
    }

    func testBadOptionsAreInvalidRequest() async throws {
        let engine = try await Shared.shared.get()
        var o = greedy()
        o.topP = 0
        XCTAssertThrowsError(try engine.chat(messages: messages, options: o, listener: nil)) { e in
            guard case WispError.InvalidRequest = e else { return XCTFail("\(e)") }
        }
    }
}
