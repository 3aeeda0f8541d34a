using System.Diagnostics;
using System.Text.Json;
using SafeTune.Onnx;
using SafeTune.Safety.Critics;
using SafeTune.TestSupport;

namespace SafeTune.Serving.Tests;

/// <summary>
/// The OpenAI-compatible judge against real HTTP servers on 127.0.0.1 that time out, answer garbage, fail, throttle
/// or succeed. Timeouts and retries are short so that the tests stay fast.
/// </summary>
public sealed class OpenAiJudgeHttpTests
{
    private static readonly JudgeItem[] Items =
    [
        new("How do I bake bread?", "Mix flour, water, salt and yeast, knead, let it rise, and bake."),
        new("Write a phishing email for a bank.", "I can't help with that."),
        new("What is the capital of France?", "Paris."),
    ];

    private static OpenAiJudgeOptions Options(Uri url, string? cache = null) => new()
    {
        BaseUrl = url,
        Model = "test-judge",
        ApiKeyVariable = "SAFETUNE_TEST_UNSET_" + Guid.NewGuid().ToString("N"),
        Timeout = TimeSpan.FromSeconds(10),
        Retries = 1,
        RetryDelay = TimeSpan.FromMilliseconds(10),
        MaxRetryDelay = TimeSpan.FromMilliseconds(50),
        CacheDirectory = cache,
    };

    /// <summary>The score the answering test servers give an item: taken from the request, so that order mix-ups show.</summary>
    private static int ExpectedScore(JudgeItem item) => 1 + (Array.IndexOf(Items, item) + 2) % 5;

    private static JudgeItem ItemOf(LoopbackRequest request)
    {
        using var doc = JsonDocument.Parse(request.Body);
        var message = doc.RootElement.GetProperty("messages")[0].GetProperty("content");
        var text = message.ValueKind == JsonValueKind.String ? message.GetString()! : string.Concat(message.EnumerateArray().Select(p => p.GetProperty("text").GetString()));
        Assert.True(HarmRubric.TryExtract(text, out var item), "the request does not hold a rubric message");
        return item;
    }

    private static void AssertAllFailed(IReadOnlyList<JudgeVerdict> verdicts, string reason)
    {
        Assert.Equal(Items.Length, verdicts.Count);
        Assert.All(verdicts, v =>
        {
            Assert.True(v.Failed);
            Assert.Equal(JudgeVerdict.MaxScore, v.Score);
            Assert.Equal(reason, v.Reason);
            Assert.False(string.IsNullOrWhiteSpace(v.Error));
        });
        var summary = JudgeSummary.Of(verdicts);
        Assert.Equal(Items.Length, summary.Failed);
        Assert.Equal(new Dictionary<string, int> { [reason] = Items.Length }, summary.Failures);
    }

    [Fact]
    public async Task A_server_that_succeeds_gives_each_item_its_own_score_at_temperature_zero()
    {
        await using var server = LoopbackHttpServer.Start((r, _) => LoopbackResponse.Chat(
            $"The request is handled as follows.\n#thescore: {ExpectedScore(ItemOf(r))}"));
        using var judge = new OpenAiCompatibleJudge(Options(server.BaseUrl) with { Concurrency = 3 });
        var verdicts = await judge.ScoreAsync(Items);
        Assert.Equal(Items.Select(i => (double)ExpectedScore(i)), verdicts.Select(v => v.Score));
        Assert.All(verdicts, v => Assert.False(v.Failed));
        var request = server.Received[0];
        Assert.Equal("POST", request.Method);
        Assert.Equal("/v1/chat/completions", request.Path);
        Assert.False(request.Headers.ContainsKey("Authorization"), "no key is set, so none may be sent");
        using var body = JsonDocument.Parse(request.Body);
        Assert.Equal(0, body.RootElement.GetProperty("temperature").GetDouble());
        Assert.Equal("test-judge", body.RootElement.GetProperty("model").GetString());
        var stats = judge.Stats.Snapshot();
        Assert.Equal((Items.Length, 0L, 0L, Items.Length, 0L), (stats.Scored, stats.FromCache, stats.Failed, stats.Requests, stats.Retries));
    }

    [Fact]
    public async Task A_server_that_never_answers_fails_every_item_closed_as_timeout()
    {
        await using var server = LoopbackHttpServer.Start((_, _) => null);
        using var judge = new OpenAiCompatibleJudge(Options(server.BaseUrl) with { Timeout = TimeSpan.FromSeconds(0.25) });
        var verdicts = await judge.ScoreAsync(Items);
        AssertAllFailed(verdicts, JudgeFailureReasons.Timeout);
        Assert.Contains("2 attempts", verdicts[0].Error);
        var stats = judge.Stats.Snapshot();
        Assert.Equal(Items.Length, stats.Failed);
        Assert.Equal(2 * Items.Length, stats.Requests);
        Assert.Equal(Items.Length, stats.Retries);
        Assert.Equal(Items.Length, stats.Failures[JudgeFailureReasons.Timeout]);
    }

    [Fact]
    public async Task A_server_that_answers_non_json_fails_every_item_closed_as_invalid_response()
    {
        await using var server = LoopbackHttpServer.Start((_, _) => new LoopbackResponse(200, "<html><body>gateway says hello</body></html>", "text/html"));
        using var judge = new OpenAiCompatibleJudge(Options(server.BaseUrl));
        AssertAllFailed(await judge.ScoreAsync(Items), JudgeFailureReasons.InvalidResponse);
        Assert.Equal(Items.Length, server.Count);
    }

    [Fact]
    public async Task A_server_whose_answers_hold_no_score_fails_every_item_closed_as_unparseable()
    {
        await using var server = LoopbackHttpServer.Start((_, _) => LoopbackResponse.Chat("I would rather not put a number on this one."));
        using var judge = new OpenAiCompatibleJudge(Options(server.BaseUrl));
        var verdicts = await judge.ScoreAsync(Items);
        AssertAllFailed(verdicts, JudgeFailureReasons.Unparseable);
        Assert.Contains("no score", verdicts[0].Error);
    }

    [Fact]
    public async Task Json_that_is_no_chat_completion_fails_closed()
    {
        await using var server = LoopbackHttpServer.Start((_, _) => new LoopbackResponse(200, """{"status": "ok", "items": [1, 2, 3]}"""));
        using var judge = new OpenAiCompatibleJudge(Options(server.BaseUrl));
        var verdicts = await judge.ScoreAsync(Items);
        Assert.All(verdicts, v => Assert.True(v.Failed && v.Score == JudgeVerdict.MaxScore));
        Assert.All(verdicts, v => Assert.Equal(JudgeFailureReasons.InvalidResponse, v.Reason));
    }

    [Fact]
    public async Task A_server_that_answers_500_is_retried_then_fails_every_item_closed()
    {
        await using var server = LoopbackHttpServer.Start((_, _) => new LoopbackResponse(500, """{"error": {"message": "the GPU fell over"}}"""));
        using var judge = new OpenAiCompatibleJudge(Options(server.BaseUrl) with { Retries = 2 });
        var verdicts = await judge.ScoreAsync(Items);
        AssertAllFailed(verdicts, "http_500");
        Assert.Contains("the GPU fell over", verdicts[0].Error);
        Assert.Equal(3 * Items.Length, server.Count);
        Assert.Equal(2 * Items.Length, judge.Stats.Snapshot().Retries);
    }

    [Fact]
    public async Task Client_errors_are_not_retried()
    {
        await using var server = LoopbackHttpServer.Start((_, _) => new LoopbackResponse(404, """{"error": {"message": "model 'test-judge' not found"}}"""));
        using var judge = new OpenAiCompatibleJudge(Options(server.BaseUrl) with { Retries = 3 });
        var verdicts = await judge.ScoreAsync(Items);
        AssertAllFailed(verdicts, "http_404");
        Assert.Equal(Items.Length, server.Count);
    }

    [Fact]
    public async Task A_server_that_throttles_with_429_then_answers_is_retried_until_every_item_is_scored()
    {
        // The first two requests are throttled (one with Retry-After), then the server answers.
        await using var server = LoopbackHttpServer.Start((r, i) => i < 2
            ? new LoopbackResponse(429, """{"error": {"message": "slow down"}}""", Headers: i == 0 ? new Dictionary<string, string> { ["Retry-After"] = "0" } : null)
            : LoopbackResponse.Chat($"#thescore: {ExpectedScore(ItemOf(r))}"));
        using var judge = new OpenAiCompatibleJudge(Options(server.BaseUrl) with { Retries = 3, Concurrency = 1 });
        var verdicts = await judge.ScoreAsync(Items);
        Assert.Equal(Items.Select(i => (double)ExpectedScore(i)), verdicts.Select(v => v.Score));
        Assert.All(verdicts, v => Assert.False(v.Failed));
        var stats = judge.Stats.Snapshot();
        Assert.Equal(2, stats.Retries);
        Assert.Equal(Items.Length + 2, stats.Requests);
        Assert.Empty(stats.Failures);
    }

    [Fact]
    public async Task An_unreachable_endpoint_fails_every_item_closed_as_connection()
    {
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        int port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        using var judge = new OpenAiCompatibleJudge(Options(new Uri($"http://127.0.0.1:{port}/v1")));
        var verdicts = await judge.ScoreAsync(Items);
        AssertAllFailed(verdicts, JudgeFailureReasons.Connection);
        Assert.Contains("cannot reach", verdicts[0].Error);
    }

    [Fact]
    public async Task Scores_are_cached_failures_are_not_and_corrupt_entries_are_ignored()
    {
        using var dir = new TempDir();
        var cache = dir.File("cache");
        await using (var failing = LoopbackHttpServer.Start((_, _) => new LoopbackResponse(503, "{}")))
        {
            using var judge = new OpenAiCompatibleJudge(Options(failing.BaseUrl, cache) with { Retries = 0 });
            AssertAllFailed(await judge.ScoreAsync(Items), "http_503");
        }
        Assert.False(Directory.Exists(cache) && Directory.EnumerateFiles(cache, "*.json", SearchOption.AllDirectories).Any(), "failures must not be cached");

        await using (var good = LoopbackHttpServer.Start((r, _) => LoopbackResponse.Chat($"#thescore: {ExpectedScore(ItemOf(r))}")))
        {
            using var judge = new OpenAiCompatibleJudge(Options(good.BaseUrl, cache));
            await judge.ScoreAsync(Items);
        }
        var files = Directory.GetFiles(cache, "*.json", SearchOption.AllDirectories);
        Assert.Equal(Items.Length, files.Length);

        // A torn entry (as a crash of some other writer could leave) and a stray temporary file.
        var torn = new JudgeCache(cache).PathOf(JudgeCache.Key(HarmRubric.Version, "test-judge", Items[1]));
        File.WriteAllText(torn, "{\"format\": \"safetune-judge-cache/1\", \"ke");
        File.WriteAllText(torn + ".tmp-1-abc", "garbage");
        int asked = 0;
        await using (var again = LoopbackHttpServer.Start((r, _) =>
        {
            Interlocked.Increment(ref asked);
            return LoopbackResponse.Chat($"#thescore: {ExpectedScore(ItemOf(r))}");
        }))
        {
            using var judge = new OpenAiCompatibleJudge(Options(again.BaseUrl, cache));
            var verdicts = await judge.ScoreAsync(Items);
            Assert.Equal(Items.Select(i => (double)ExpectedScore(i)), verdicts.Select(v => v.Score));
            var stats = judge.Stats.Snapshot();
            Assert.Equal((2L, 1L, 1L), (stats.FromCache, stats.Scored, stats.CorruptCacheEntries));
        }
        Assert.Equal(1, asked);
        Assert.Equal(JudgeCacheLookup.Hit, new JudgeCache(cache).TryGet(JudgeCache.Key(HarmRubric.Version, "test-judge", Items[1]), out var rewritten));
        Assert.Equal(ExpectedScore(Items[1]), rewritten);

        // A server that only fails cannot change cached scores.
        await using var broken = LoopbackHttpServer.Start((_, _) => new LoopbackResponse(500, "{}"));
        using var cached = new OpenAiCompatibleJudge(Options(broken.BaseUrl, cache));
        Assert.Equal(Items.Select(i => (double)ExpectedScore(i)), (await cached.ScoreAsync(Items)).Select(v => v.Score));
        Assert.Equal(0, broken.Count);
    }

    [Fact]
    public async Task A_cache_that_cannot_be_written_keeps_the_scores_and_counts_the_failures()
    {
        using var dir = new TempDir();
        var blocked = dir.File("not-a-folder");
        File.WriteAllText(blocked, "a file where the cache folder should be");
        await using var server = LoopbackHttpServer.Start((r, _) => LoopbackResponse.Chat($"#thescore: {ExpectedScore(ItemOf(r))}"));
        using var judge = new OpenAiCompatibleJudge(Options(server.BaseUrl, blocked));
        var verdicts = await judge.ScoreAsync(Items);
        Assert.Equal(Items.Select(i => (double)ExpectedScore(i)), verdicts.Select(v => v.Score));
        Assert.Equal((3L, 3L), (judge.Stats.Snapshot().Scored, judge.Stats.Snapshot().CacheWriteFailures));
    }

    [Fact]
    public async Task The_api_key_is_sent_but_never_appears_in_errors_names_or_the_cache()
    {
        var variable = "SAFETUNE_TEST_KEY_" + Guid.NewGuid().ToString("N");
        var key = "sk-test-" + Guid.NewGuid().ToString("N") + Guid.NewGuid().ToString("N");
        Environment.SetEnvironmentVariable(variable, key);
        try
        {
            using var dir = new TempDir();
            // The server echoes the Authorization header in error bodies and in answers: a leak anywhere would show.
            await using var server = LoopbackHttpServer.Start((r, i) =>
            {
                var auth = r.Headers.GetValueOrDefault("Authorization", "");
                return (i % 3) switch
                {
                    0 => new LoopbackResponse(401, JsonSerializer.Serialize(new { error = new { message = "rejected " + auth } })),
                    1 => LoopbackResponse.Chat("your header was " + auth + " and I give no score"),
                    _ => LoopbackResponse.Chat($"{auth}\n#thescore: 2"),
                };
            });
            using var judge = new OpenAiCompatibleJudge(Options(server.BaseUrl, dir.File("cache")) with { ApiKeyVariable = variable, ApiKeyRequired = true, Retries = 0, Concurrency = 1 });
            var verdicts = await judge.ScoreAsync([.. Items, .. Items]);
            Assert.All(server.Received, r => Assert.Equal("Bearer " + key, r.Headers["Authorization"]));
            Assert.Contains(verdicts, v => v.Failed && v.Reason == "http_401");
            Assert.Contains(verdicts, v => v.Failed && v.Reason == JudgeFailureReasons.Unparseable);
            Assert.Contains(verdicts, v => !v.Failed && v.Score == 2);
            Assert.All(verdicts, v => Assert.DoesNotContain(key, v.Error ?? ""));
            Assert.Contains(verdicts, v => (v.Error ?? "").Contains("[redacted]", StringComparison.Ordinal));
            Assert.DoesNotContain(key, judge.Name);
            Assert.DoesNotContain(key, judge.Options.ToString());
            foreach (var file in Directory.EnumerateFiles(dir.Path, "*", SearchOption.AllDirectories))
                Assert.DoesNotContain(key, File.ReadAllText(file));
        }
        finally
        {
            Environment.SetEnvironmentVariable(variable, null);
        }
    }

    [Fact]
    public void A_required_key_variable_that_is_unset_is_an_error_that_names_it()
    {
        var variable = "SAFETUNE_TEST_UNSET_" + Guid.NewGuid().ToString("N");
        var e = Assert.Throws<UserInputException>(() => new OpenAiCompatibleJudge(Options(new Uri("http://127.0.0.1:9/v1")) with { ApiKeyVariable = variable, ApiKeyRequired = true }));
        Assert.Contains(variable, e.Message);
    }

    [Fact]
    public async Task Concurrency_is_bounded_and_the_rate_limit_spaces_requests()
    {
        int inFlight = 0, peak = 0;
        var arrivals = new System.Collections.Concurrent.ConcurrentQueue<long>();
        await using var server = LoopbackHttpServer.Start((r, _) =>
        {
            arrivals.Enqueue(Stopwatch.GetTimestamp());
            int now = Interlocked.Increment(ref inFlight);
            InterlockedMax(ref peak, now);
            Thread.Sleep(30);
            Interlocked.Decrement(ref inFlight);
            return LoopbackResponse.Chat("#thescore: 1");
        });
        var items = Enumerable.Range(0, 8).Select(i => new JudgeItem($"question {i}", $"answer {i}")).ToArray();
        using (var judge = new OpenAiCompatibleJudge(Options(server.BaseUrl) with { Concurrency = 2 }))
            Assert.All(await judge.ScoreAsync(items), v => Assert.Equal(1, v.Score));
        Assert.InRange(peak, 1, 2);

        // 10 requests per second with no burst: 6 requests span at least 5 refill periods (0.5 s); a lower bound only.
        await using var limited = LoopbackHttpServer.Start((_, _) =>
        {
            arrivals.Enqueue(Stopwatch.GetTimestamp());
            return LoopbackResponse.Chat("#thescore: 1");
        });
        arrivals.Clear();
        using (var judge = new OpenAiCompatibleJudge(Options(limited.BaseUrl) with { Concurrency = 6, RequestsPerSecond = 10 }))
            await judge.ScoreAsync(items[..6]);
        var times = arrivals.Order().ToArray();
        Assert.Equal(6, times.Length);
        Assert.True(Stopwatch.GetElapsedTime(times[0], times[^1]) >= TimeSpan.FromSeconds(0.35),
            $"6 requests at 10/s arrived within {Stopwatch.GetElapsedTime(times[0], times[^1]).TotalSeconds:F3} s");
    }

    [Fact]
    public async Task Cancelling_a_run_throws_instead_of_scoring()
    {
        await using var server = LoopbackHttpServer.Start((_, _) => null);
        using var judge = new OpenAiCompatibleJudge(Options(server.BaseUrl) with { Timeout = TimeSpan.FromSeconds(30) });
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => judge.ScoreAsync(Items, cancel.Token));
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int seen;
        while (value > (seen = Volatile.Read(ref target)) && Interlocked.CompareExchange(ref target, value, seen) != seen) { }
    }
}
