// The Kotlin face of Wisp: `suspend` loading with progress and `Flow<String>` streaming,
// over the uniffi-generated API in `generated/dev/wisp/wisp_ffi.kt` (same package).
package dev.wisp

import java.util.concurrent.atomic.AtomicBoolean
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.channels.trySendBlocking
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.callbackFlow
import kotlinx.coroutines.launch

object Wisp {
    /**
     * Load a GGUF model file off the calling thread. With [sha256] (or `config.sha256`),
     * a file with another hash is refused with [WispException.ChecksumMismatch] before
     * anything is loaded. Cancelling the coroutine cancels the load (it then throws
     * [kotlinx.coroutines.CancellationException]).
     */
    suspend fun load(
        path: String,
        config: EngineConfig = EngineConfig(),
        sha256: String? = null,
        onProgress: (stage: LoadStage, done: Long, total: Long) -> Unit = { _, _, _ -> },
    ): Engine = withToken { token ->
        val checked = if (sha256 != null) config.copy(sha256 = sha256) else config
        loadEngine(path, checked, progress(onProgress), token)
    }

    /**
     * Download [url] into [cacheDir] (resuming an interrupted download, checking [sha256]
     * when given), then load it.
     */
    suspend fun load(
        url: String,
        cacheDir: java.io.File,
        sha256: String?,
        config: EngineConfig = EngineConfig(),
        onProgress: (stage: LoadStage, done: Long, total: Long) -> Unit = { _, _, _ -> },
    ): Engine {
        val path = download(url, cacheDir, sha256, onProgress)
        return load(path, config, onProgress = onProgress)
    }

    /** Download [url] into [cacheDir]; returns the file's path. Cancellable. */
    suspend fun download(
        url: String,
        cacheDir: java.io.File,
        sha256: String?,
        onProgress: (stage: LoadStage, done: Long, total: Long) -> Unit = { _, _, _ -> },
    ): String = withToken { token ->
        downloadModelAsync(url, cacheDir.path, sha256, progress(onProgress), token)
    }

    private fun progress(f: (LoadStage, Long, Long) -> Unit) = object : ProgressListener {
        override fun onProgress(stage: LoadStage, done: ULong, total: ULong) =
            f(stage, done.toLong(), total.toLong())
    }

    // Coroutine cancellation only drops uniffi's future; the Rust work runs on its own
    // thread, so it is told to stop through a CancelToken.
    private suspend fun <T> withToken(block: suspend (CancelToken) -> T): T {
        val token = CancelToken()
        try {
            return block(token)
        } catch (e: CancellationException) {
            token.cancel()
            throw e
        } finally {
            token.close()
        }
    }
}

/**
 * Stream the assistant's answer to [messages]. Cancelling the collector (or `take(n)`)
 * stops generation at the next token; errors arrive as [WispException].
 */
fun Engine.chatFlow(
    messages: List<ChatMessage>,
    options: GenerationOptions = defaultOptions(),
): Flow<String> = streaming { listener -> chatAsync(messages, options, listener) }

/** Stream a raw completion of [prompt] (no chat template), as [chatFlow] does. */
fun Engine.completeFlow(
    prompt: String,
    options: GenerationOptions = defaultOptions(),
): Flow<String> = streaming { listener -> completeAsync(prompt, options, listener) }

private fun streaming(run: suspend (TokenListener) -> Completion): Flow<String> = callbackFlow {
    val stopped = AtomicBoolean(false)
    val listener = object : TokenListener {
        // Runs on the generating thread: blocking here is backpressure, not a stall of
        // any coroutine; returning false ends generation.
        override fun onText(text: String): Boolean =
            !stopped.get() && trySendBlocking(text).isSuccess && !stopped.get()
    }
    launch {
        try {
            run(listener)
            channel.close()
        } catch (e: CancellationException) {
            throw e
        } catch (e: Throwable) {
            channel.close(e)
        }
    }
    awaitClose { stopped.set(true) }
}

/** Convenience for callers that want the whole answer: `engine.chat(messages)`. */
suspend fun Engine.chat(
    messages: List<ChatMessage>,
    options: GenerationOptions = defaultOptions(),
): Completion = chatAsync(messages, options, null)

