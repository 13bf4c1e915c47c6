// The Swift face of Wisp: `async throws` loading with progress and `AsyncThrowingStream`
// streaming, as extensions of the uniffi-generated `Engine` (Generated/Wisp.swift).
import Foundation

/// Progress of a load or download: the stage, bytes done, bytes in all (0: unknown).
public typealias ProgressHandler = @Sendable (LoadStage, UInt64, UInt64) -> Void

final class ProgressForwarder: ProgressListener, @unchecked Sendable {
    let handler: ProgressHandler
    init(_ handler: @escaping ProgressHandler) { self.handler = handler }
    func onProgress(stage: LoadStage, done: UInt64, total: UInt64) { handler(stage, done, total) }
}

/// Feeds generated text into a stream; answers false once the consumer is gone, which
/// stops generation at the next token.
final class StreamForwarder: TokenListener, @unchecked Sendable {
    private let continuation: AsyncThrowingStream<String, Error>.Continuation
    private let lock = NSLock()
    private var stopped = false

    init(_ continuation: AsyncThrowingStream<String, Error>.Continuation) {
        self.continuation = continuation
    }

    func stop() {
        lock.lock()
        stopped = true
        lock.unlock()
    }

    func onText(text: String) -> Bool {
        lock.lock()
        let stop = stopped
        lock.unlock()
        if stop { return false }
        if case .terminated = continuation.yield(text) { return false }
        return true
    }
}

/// Run `body` with a CancelToken that the surrounding task's cancellation trips (the
/// Rust work runs on its own thread, so dropping the future alone would not stop it).
func withCancelToken<T>(_ body: (CancelToken) async throws -> T) async throws -> T {
    let token = CancelToken()
    return try await withTaskCancellationHandler {
        try await body(token)
    } onCancel: {
        token.cancel()
    }
}

extension Engine {
    /// Load a GGUF model file off the calling thread. With `sha256` (or `config.sha256`),
    /// a file with another hash is refused with `WispError.ChecksumMismatch` before
    /// anything is loaded. Cancelling the task cancels the load.
    public static func load(
        path: String,
        config: EngineConfig = EngineConfig(),
        sha256: String? = nil,
        progress: ProgressHandler? = nil
    ) async throws -> Engine {
        var checked = config
        if let sha256 { checked.sha256 = sha256 }
        return try await withCancelToken { token in
            try await loadEngine(
                path: path, config: checked, progress: progress.map(ProgressForwarder.init),
                cancel: token)
        }
    }

    /// Download `url` into `cacheDirectory` (resuming, checking `sha256` when given), then load it.
    public static func load(
        url: String,
        cacheDirectory: URL,
        sha256: String?,
        config: EngineConfig = EngineConfig(),
        progress: ProgressHandler? = nil
    ) async throws -> Engine {
        let path = try await Wisp.download(
            url: url, cacheDirectory: cacheDirectory, sha256: sha256, progress: progress)
        return try await load(path: path, config: config, progress: progress)
    }

    /// Stream the assistant's answer. Cancelling the consuming task (or breaking out of
    /// the loop) stops generation; errors are `WispError`.
    public func chat(
        _ messages: [ChatMessage],
        options: GenerationOptions = defaultOptions()
    ) -> AsyncThrowingStream<String, Error> {
        stream { listener in
            try await self.chatAsync(messages: messages, options: options, listener: listener)
        }
    }

    /// Stream a raw completion of `prompt` (no chat template).
    public func complete(
        _ prompt: String,
        options: GenerationOptions = defaultOptions()
    ) -> AsyncThrowingStream<String, Error> {
        stream { listener in
            try await self.completeAsync(prompt: prompt, options: options, listener: listener)
        }
    }

    private func stream(
        _ run: @escaping @Sendable (TokenListener) async throws -> Completion
    ) -> AsyncThrowingStream<String, Error> {
        AsyncThrowingStream { continuation in
            let listener = StreamForwarder(continuation)
            let task = Task {
                do {
                    _ = try await run(listener)
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in
                listener.stop()
                task.cancel()
            }
        }
    }
}

/// Download `url` into `cacheDirectory`; returns the file's path. Cancelling the task
/// cancels the download (the partial file is kept and resumed next time).
public func download(
    url: String,
    cacheDirectory: URL,
    sha256: String?,
    progress: ProgressHandler? = nil
) async throws -> String {
    try await withCancelToken { token in
        try await downloadModelAsync(
            url: url, cacheDir: cacheDirectory.path, sha256: sha256,
            progress: progress.map(ProgressForwarder.init), cancel: token)
    }
}
