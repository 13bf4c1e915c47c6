// JVM tests of the Kotlin API against the real native library and SmolLM2 on the GPU
// (lavapipe here). No JUnit on this machine: a small runner prints "N passed, N failed".
// Run by `cargo xtask kotlin`, which passes WISP_MODEL (SmolLM2 GGUF) and WISP_CLI.
package dev.wisp

import com.sun.net.httpserver.HttpServer
import java.io.File
import java.net.InetSocketAddress
import java.security.MessageDigest
import java.util.concurrent.atomic.AtomicInteger
import kotlin.system.exitProcess
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.cancel
import kotlinx.coroutines.launch
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking

val modelPath: String = System.getenv("WISP_MODEL") ?: error("set WISP_MODEL")
val cliPath: String = System.getenv("WISP_CLI") ?: error("set WISP_CLI")
val messages = listOf(
    ChatMessage("system", "You are a concise assistant."),
    ChatMessage("user", "What is the capital of France? Answer in one sentence."),
)
const val MAX_TOKENS = 40u

fun greedy(max: UInt = MAX_TOKENS) = greedyOptions().copy(maxTokens = max)

fun check(ok: Boolean, msg: () -> String) {
    if (!ok) throw AssertionError(msg())
}

/** `wisp run --special` on the same prompt: the reference answer. */
fun cliAnswer(prompt: String): String {
    val p = ProcessBuilder(
        cliPath, "run", modelPath, "--special", "--temperature", "0",
        "--max-tokens", MAX_TOKENS.toString(), "--prompt", prompt,
    ).redirectError(ProcessBuilder.Redirect.INHERIT).start()
    val out = p.inputStream.readBytes().toString(Charsets.UTF_8)
    check(p.waitFor() == 0) { "wisp run failed" }
    return out
}

inline fun <reified E : Throwable> expectThrows(block: () -> Unit): E {
    try {
        block()
    } catch (e: Throwable) {
        if (e is E) return e
        throw AssertionError("expected ${E::class.simpleName}, got $e")
    }
    throw AssertionError("expected ${E::class.simpleName}, nothing was thrown")
}

fun main() {
    val tests = mutableListOf<Pair<String, suspend () -> Unit>>()
    var engine: Engine? = null
    val e = { engine ?: error("the model did not load") }

    tests += "a missing file is WispException.NotFound" to {
        val err = expectThrows<WispException.NotFound> { Wisp.load("/nonexistent/model.gguf") }
        check(err.detail.contains("/nonexistent/model.gguf")) { err.detail }
    }
    tests += "a corrupt file is WispException.InvalidModel" to {
        val f = File.createTempFile("corrupt", ".gguf")
        f.writeBytes("GGUF but not really a model".toByteArray())
        try {
            expectThrows<WispException.InvalidModel> { Wisp.load(f.path) }
        } finally {
            f.delete()
        }
    }
    tests += "a wrong sha256 is WispException.ChecksumMismatch, before loading" to {
        val stages = mutableListOf<LoadStage>()
        val wrong = "ab".repeat(32)
        val err = expectThrows<WispException.ChecksumMismatch> {
            Wisp.load(modelPath, sha256 = wrong) { stage, _, _ -> synchronized(stages) { stages += stage } }
        }
        val actual = MessageDigest.getInstance("SHA-256").digest(File(modelPath).readBytes())
            .joinToString("") { "%02x".format(it) }
        check(err.expected == wrong && err.actual == actual) { "$err" }
        check(LoadStage.LOADING !in stages) { "loaded anyway: $stages" }
    }

    tests += "load SmolLM2 on the GPU with progress" to {
        var last = 0L
        var total = 0L
        engine = Wisp.load(modelPath, EngineConfig(device = Device.GPU)) { stage, done, t ->
            check(stage == LoadStage.LOADING) { "stage $stage" }
            check(done >= last) { "progress went backwards" }
            last = done
            total = t
        }
        check(total > 0 && last == total) { "progress ended at $last / $total" }
        val info = e().info()
        check(info.architecture == "llama" && info.vocabSize == 49152u) { "$info" }
        check(info.device != "cpu" && info.engine == "gpu") { "expected a GPU, got ${info.device}" }
    }
    tests += "auto picks an engine and says why; the CPU engine runs" to {
        val auto = Wisp.load(modelPath, EngineConfig(contextSize = 64u))
        val info = auto.info()
        check(info.engineReason.startsWith("auto:") && info.engine in listOf("gpu", "cpu")) { "$info" }
        auto.close()
        val cpu = Wisp.load(modelPath, EngineConfig(device = Device.CPU, threads = 2u, contextSize = 64u))
        check(cpu.info().engine == "cpu" && "2 threads" in cpu.info().engineReason) { "${cpu.info()}" }
        cpu.close()
    }
    tests += "cancelling the coroutine stops a load" to {
        val seen = java.util.concurrent.CopyOnWriteArrayList<Long>()
        var total = 0L
        coroutineScope {
            val job = launch {
                Wisp.load(modelPath, EngineConfig(device = Device.GPU)) { _, done, t ->
                    total = t
                    seen.add(done)
                    if (seen.size == 2) this.cancel()
                }
            }
            job.join()
            check(job.isCancelled) { "the load was not cancelled" }
        }
        Thread.sleep(1500)
        check(seen.size >= 2 && seen.last() < total) { "the load ran on: ${seen.size} events, ${seen.last()} / $total" }
    }
    tests += "greedy chat streams what `wisp run --special` prints" to {
        val prompt = e().renderChat(messages)
        check(prompt.contains("<|im_start|>assistant")) { prompt }
        val expected = cliAnswer(prompt)
        val pieces = e().chatFlow(messages, greedy()).toList()
        check(pieces.size > 3) { "expected streaming, got ${pieces.size} pieces" }
        val got = pieces.joinToString("")
        check(got == expected) { "flow: ${got.quoted()}\ncli:  ${expected.quoted()}" }
        check(got.contains("Paris")) { got }
        // The raw completion of the rendered prompt is the same answer.
        val raw = e().completeFlow(prompt, greedy()).toList().joinToString("")
        check(raw == expected) { "complete: ${raw.quoted()}" }
    }
    tests += "usage stats" to {
        val c = e().chat(messages, greedy(4u))
        val u = c.usage
        check(c.finishReason == FinishReason.LENGTH && u.completionTokens == 4u) { "$c" }
        check(u.promptTokens > 10u && u.cachedPromptTokens < u.promptTokens) { "$u" }
        check(u.timeToFirstTokenMs > 0 && u.decodeTokensPerSecond > 0 && u.prefillTokensPerSecond > 0) { "$u" }
    }
    tests += "cancelling the collector stops generation" to {
        val first = e().chatFlow(messages, greedy(200u)).take(2).toList()
        check(first.size == 2) { "$first" }
        // The engine is free again at once (the session lock was released).
        val c = e().chat(messages, greedy(4u))
        check(c.usage.completionTokens == 4u) { "${c.usage}" }
    }
    tests += "a listener returning false cancels; Engine.cancel() from another thread too" to {
        val n = AtomicInteger()
        val c = e().complete("Once upon a time", greedy(200u), object : TokenListener {
            override fun onText(text: String) = n.incrementAndGet() < 3
        })
        check(c.finishReason == FinishReason.CANCELLED && c.usage.completionTokens < 10u) { "$c" }
        val eng = e()
        val c2 = eng.complete("Once upon a time", greedy(200u), object : TokenListener {
            override fun onText(text: String): Boolean {
                if (n.incrementAndGet() == 6) Thread { eng.cancel() }.apply { start(); join() }
                return true
            }
        })
        check(c2.finishReason == FinishReason.CANCELLED && c2.usage.completionTokens < 20u) { "$c2" }
    }
    tests += "bad sampling options are WispException.InvalidRequest" to {
        expectThrows<WispException.InvalidRequest> { e().chat(messages, greedy().copy(topP = 0f)) }
    }
    tests += "download from a local server with progress and sha256" to {
        val bytes = ByteArray(1 shl 20) { (it * 31 + it / 977).toByte() }
        val sha = MessageDigest.getInstance("SHA-256").digest(bytes).joinToString("") { "%02x".format(it) }
        val server = HttpServer.create(InetSocketAddress("127.0.0.1", 0), 0)
        server.createContext("/m/tiny.gguf") { ex ->
            ex.sendResponseHeaders(200, bytes.size.toLong())
            ex.responseBody.use { it.write(bytes) }
        }
        server.start()
        val dir = File.createTempFile("wisp-cache", "").apply { delete(); mkdirs() }
        try {
            val url = "http://127.0.0.1:${server.address.port}/m/tiny.gguf"
            var seen = 0L
            val path = Wisp.download(url, dir, sha) { stage, done, _ ->
                if (stage == LoadStage.DOWNLOADING) seen = done
            }
            check(File(path).readBytes().contentEquals(bytes) && seen == bytes.size.toLong()) { path }
            File(path).delete()
            val err = expectThrows<WispException.ChecksumMismatch> { Wisp.download(url, dir, "0".repeat(64)) }
            check(err.actual == sha) { "$err" }
        } finally {
            server.stop(0)
            dir.deleteRecursively()
        }
    }

    var passed = 0
    var failed = 0
    for ((name, body) in tests) {
        val t0 = System.nanoTime()
        try {
            runBlocking { body() }
            passed++
            println("ok   $name (${(System.nanoTime() - t0) / 1_000_000} ms)")
        } catch (t: Throwable) {
            failed++
            println("FAIL $name: $t")
        }
    }
    engine?.close()
    println("$passed passed, $failed failed")
    exitProcess(if (failed == 0) 0 else 1)
}

fun String.quoted() = "\"" + replace("\n", "\\n") + "\""
