using System.ClientModel;
using System.ClientModel.Primitives;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Threading.RateLimiting;
using Microsoft.Extensions.AI;
using OpenAI;
using Polly;
using Polly.Retry;
using AiChatMessage = Microsoft.Extensions.AI.ChatMessage;
using SafeTune.Onnx;

namespace SafeTune.Safety.Critics;

/// <summary>
/// A Safety Critic behind any OpenAI-compatible chat endpoint (vLLM, Ollama, llama.cpp's server, <c>safetune serve</c>,
/// or a hosted model), through Microsoft.Extensions.AI's <see cref="IChatClient"/> over the OpenAI SDK. Each item is
/// one chat request at temperature 0 (<see cref="OpenAiJudgeOptions.Format"/> says what it holds); the answer is read
/// with <see cref="RubricAnswer"/>.
/// </summary>
/// <remarks>
/// <para>Requests are rate-limited client-side (a token bucket), at most <see cref="OpenAiJudgeOptions.Concurrency"/>
/// run at once, each has its own timeout, and timeouts, connection errors, HTTP 408, 429 and 5xx are retried with
/// exponential backoff and jitter (a server's <c>Retry-After</c> is honoured up to the maximum delay).</para>
/// <para>It fails closed: an item still unanswered after the retries, or whose answer holds no score, gets
/// <see cref="JudgeVerdict.FailClosed(string, string)"/> (score 5) with a reason key, and <see cref="Stats"/> counts
/// it. Scores are cached on disk when a cache folder is set; failures are never cached.</para>
/// <para>The API key is read from the environment variable the options name. It is sent in the Authorization header
/// and nowhere else: not in <see cref="Name"/>, error texts, the cache or exceptions.</para>
/// </remarks>
public sealed class OpenAiCompatibleJudge : ISafetyJudge, IJudgeStatsSource
{
    /// <summary>The prompt-format part of cache keys for <see cref="JudgePromptFormat.Conversation"/>.</summary>
    public const string ConversationFormatVersion = "safetune-conversation/1";

    private readonly OpenAiJudgeOptions _options;
    private readonly IChatClient _chat;
    private readonly IDisposable? _ownedChat;
    private readonly HttpClient? _http;
    private readonly RateLimiter? _limiter;
    private readonly SemaphoreSlim _slots;
    private readonly ResiliencePipeline<string> _retry;
    private readonly JudgeCache? _cache;
    private readonly string? _key;
    private readonly ChatOptions _chatOptions;
    private bool _disposed;

    /// <summary>
    /// Creates the judge. Without <paramref name="chatClient"/> it talks to <see cref="OpenAiJudgeOptions.BaseUrl"/>
    /// through the OpenAI SDK (its own retries turned off; this judge retries). A given client is used as it is and
    /// not disposed.
    /// </summary>
    /// <exception cref="UserInputException">The options are invalid, or a required API key variable is unset.</exception>
    public OpenAiCompatibleJudge(OpenAiJudgeOptions options, IChatClient? chatClient = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        var key = Environment.GetEnvironmentVariable(options.ApiKeyVariable);
        _key = string.IsNullOrEmpty(key) ? null : key;
        if (_key is null && options.ApiKeyRequired)
            throw new UserInputException($"the environment variable {options.ApiKeyVariable} (key_env), which should hold the judge's API key, is not set.");

        if (chatClient is null)
        {
            _http = new HttpClient(new SocketsHttpHandler
            {
                ConnectTimeout = options.Timeout,
                PooledConnectionLifetime = TimeSpan.FromMinutes(2),
                AutomaticDecompression = DecompressionMethods.All,
            })
            { Timeout = System.Threading.Timeout.InfiniteTimeSpan };
            var clientOptions = new OpenAIClientOptions
            {
                Endpoint = options.BaseUrl,
                Transport = new HttpClientPipelineTransport(_http),
                RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
                // The judge's own timeout (below) fires first; this only bounds a stuck socket.
                NetworkTimeout = options.Timeout + options.Timeout + TimeSpan.FromSeconds(1),
                ClientLoggingOptions = new ClientLoggingOptions { EnableLogging = false, EnableMessageLogging = false, EnableMessageContentLogging = false },
            };
            if (_key is null) clientOptions.AddPolicy(new NoAuthorizationPolicy(), PipelinePosition.BeforeTransport);
            var client = new OpenAIClient(new ApiKeyCredential(_key ?? "unused"), clientOptions).GetChatClient(options.Model).AsIChatClient();
            _chat = client;
            _ownedChat = client;
        }
        else _chat = chatClient;

        _limiter = options.RequestsPerSecond > 0 ? CreateLimiter(options.RequestsPerSecond) : null;
        _slots = new SemaphoreSlim(options.Concurrency, options.Concurrency);
        _retry = CreateRetry(options);
        _cache = options.CacheDirectory is null ? null : new JudgeCache(options.CacheDirectory);
        _chatOptions = new ChatOptions { Temperature = 0, MaxOutputTokens = options.MaxTokens };
    }

    /// <summary>The settings.</summary>
    public OpenAiJudgeOptions Options => _options;

    /// <inheritdoc/>
    public string Name => $"openai ({_options.Model} at {_options.BaseUrl.GetLeftPart(UriPartial.Path).TrimEnd('/')})";

    /// <inheritdoc/>
    public JudgeStats Stats { get; } = new();

    /// <summary>The prompt-format part of this judge's cache keys.</summary>
    public string PromptFormatVersion => _options.Format == JudgePromptFormat.Rubric ? HarmRubric.Version : ConversationFormatVersion;

    /// <summary>The chat messages the judge sends for <paramref name="item"/>.</summary>
    public IReadOnlyList<AiChatMessage> Messages(JudgeItem item)
    {
        ArgumentNullException.ThrowIfNull(item);
        return _options.Format == JudgePromptFormat.Rubric
            ? [new AiChatMessage(ChatRole.User, HarmRubric.Render(item))]
            : [new AiChatMessage(ChatRole.User, item.Prompt), new AiChatMessage(ChatRole.Assistant, item.Response)];
    }

    /// <inheritdoc/>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (a cancelled run is not scored).</exception>
    public async Task<IReadOnlyList<JudgeVerdict>> ScoreAsync(IReadOnlyList<JudgeItem> items, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(items);
        var verdicts = new JudgeVerdict[items.Count];
        var pending = new List<Task>();
        for (int i = 0; i < items.Count; i++)
        {
            ArgumentNullException.ThrowIfNull(items[i]);
            string? key = _cache is null ? null : JudgeCache.Key(PromptFormatVersion, _options.Model, items[i]);
            if (key is not null)
            {
                switch (_cache!.TryGet(key, out double cached))
                {
                    case JudgeCacheLookup.Hit:
                        Stats.FromCache();
                        verdicts[i] = new JudgeVerdict(cached);
                        continue;
                    case JudgeCacheLookup.Corrupt:
                        Stats.CorruptCacheEntry();
                        break;
                }
            }
            pending.Add(Fill(i, key));
        }
        await Task.WhenAll(pending).ConfigureAwait(false);
        return verdicts;

        async Task Fill(int index, string? key) => verdicts[index] = await ScoreOneAsync(items[index], key, cancellationToken).ConfigureAwait(false);
    }

    private async Task<JudgeVerdict> ScoreOneAsync(JudgeItem item, string? key, CancellationToken cancellationToken)
    {
        await _slots.WaitAsync(cancellationToken).ConfigureAwait(false);
        string answer;
        int attempts = 0;
        try
        {
            var messages = Messages(item);
            answer = await _retry.ExecuteAsync(async token =>
            {
                attempts++;
                return await AttemptAsync(messages, token).ConfigureAwait(false);
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception e)
        {
            var (reason, message) = Describe(e, attempts);
            Stats.Failed(reason);
            return JudgeVerdict.FailClosed(Redact(message), reason);
        }
        finally
        {
            _slots.Release();
        }
        if (!RubricAnswer.TryParse(answer, out double score, out string problem))
        {
            Stats.Failed(JudgeFailureReasons.Unparseable);
            return JudgeVerdict.FailClosed(Redact($"the judge's answer holds no score: {problem}"), JudgeFailureReasons.Unparseable);
        }
        if (key is not null)
        {
            // A cache that cannot be written costs a later rescore, never this score.
            try { _cache!.Put(key, score); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { Stats.CacheWriteFailed(); }
        }
        Stats.Scored();
        return new JudgeVerdict(score);
    }

    /// <summary>One HTTP request: wait for the rate limiter (not timed), then the call under its own timeout.</summary>
    private async ValueTask<string> AttemptAsync(IReadOnlyList<AiChatMessage> messages, CancellationToken token)
    {
        using var lease = _limiter is null ? null : await _limiter.AcquireAsync(1, token).ConfigureAwait(false);
        if (lease is { IsAcquired: false }) throw new InvalidOperationException("the judge's rate limiter refused the request.");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(token);
        timeout.CancelAfter(_options.Timeout);
        Stats.Request();
        try
        {
            var response = await _chat.GetResponseAsync(messages, _chatOptions, timeout.Token).ConfigureAwait(false);
            return response.Text;
        }
        catch (OperationCanceledException) when (!token.IsCancellationRequested)
        {
            throw new JudgeTimeoutException();
        }
    }

    private static RateLimiter CreateLimiter(double perSecond)
    {
        // A bucket that refills every 1/rate seconds (one token), or every 100 ms by rate/10 tokens for fast rates.
        bool fast = perSecond >= 10;
        int tokens = fast ? (int)Math.Max(1, Math.Round(perSecond / 10)) : 1;
        var period = fast ? TimeSpan.FromMilliseconds(100) : TimeSpan.FromSeconds(1 / perSecond);
        return new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
        {
            TokenLimit = tokens,
            TokensPerPeriod = tokens,
            ReplenishmentPeriod = period,
            QueueLimit = int.MaxValue,
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
            AutoReplenishment = true,
        });
    }

    private ResiliencePipeline<string> CreateRetry(OpenAiJudgeOptions options)
    {
        var builder = new ResiliencePipelineBuilder<string>();
        if (options.Retries == 0) return builder.Build();
        return builder.AddRetry(new RetryStrategyOptions<string>
        {
            ShouldHandle = new PredicateBuilder<string>().Handle<Exception>(IsTransient),
            MaxRetryAttempts = options.Retries,
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            Delay = options.RetryDelay,
            MaxDelay = options.MaxRetryDelay,
            DelayGenerator = args => ValueTask.FromResult(RetryAfter(args.Outcome.Exception, options.MaxRetryDelay)),
            OnRetry = _ =>
            {
                Stats.Retry();
                return default;
            },
        }).Build();
    }

    private static bool IsTransient(Exception e) => e switch
    {
        JudgeTimeoutException => true,
        ClientResultException { Status: 0 } => true,
        ClientResultException c => c.Status is 408 or 429 || c.Status >= 500,
        HttpRequestException { StatusCode: { } s } => (int)s is 408 or 429 || (int)s >= 500,
        HttpRequestException or IOException or SocketException => true,
        _ => false,
    };

    /// <summary>A server's Retry-After (seconds or an HTTP date), capped; null for the default backoff.</summary>
    private static TimeSpan? RetryAfter(Exception? e, TimeSpan max)
    {
        if (e is not ClientResultException c || c.GetRawResponse() is not { } response) return null;
        if (!response.Headers.TryGetValue("Retry-After", out var value) || string.IsNullOrWhiteSpace(value)) return null;
        TimeSpan wait;
        if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) && seconds >= 0)
            wait = TimeSpan.FromSeconds(seconds);
        else if (DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at))
            wait = at - DateTimeOffset.UtcNow;
        else return null;
        return wait < TimeSpan.Zero ? TimeSpan.Zero : wait > max ? max : wait;
    }

    /// <summary>The reason key and a message for a failed request; the message holds no header and no request text.</summary>
    private (string Reason, string Message) Describe(Exception e, int attempts)
    {
        var inv = CultureInfo.InvariantCulture;
        string tries = attempts == 1 ? "1 attempt" : $"{attempts} attempts";
        switch (e)
        {
            case JudgeTimeoutException:
                return (JudgeFailureReasons.Timeout, string.Create(inv, $"no answer within {_options.Timeout.TotalSeconds:G4} s ({tries})"));
            case ClientResultException { Status: > 0 } c:
                return (JudgeFailureReasons.Http(c.Status), string.Create(inv, $"HTTP {c.Status} from the judge endpoint ({tries}){ServerMessage(c)}"));
            case ClientResultException c when Find<HttpRequestException>(c) is { } h:
                return (JudgeFailureReasons.Connection, $"cannot reach the judge endpoint: {h.HttpRequestError} ({tries})");
            case HttpRequestException { StatusCode: { } s }:
                return (JudgeFailureReasons.Http((int)s), string.Create(inv, $"HTTP {(int)s} from the judge endpoint ({tries})"));
            case HttpRequestException h:
                return (JudgeFailureReasons.Connection, $"cannot reach the judge endpoint: {h.HttpRequestError} ({tries})");
            case ClientResultException or IOException or SocketException:
                return (JudgeFailureReasons.Connection, $"cannot reach the judge endpoint: {e.GetType().Name} ({tries})");
            case JsonException or FormatException or InvalidOperationException or KeyNotFoundException or ArgumentException or UserInputException or NullReferenceException:
                return (JudgeFailureReasons.InvalidResponse, $"the judge endpoint's reply is not a chat completion ({e.GetType().Name})");
            default:
                return (JudgeFailureReasons.Other, $"the judge request failed: {e.GetType().Name}");
        }
    }

    private static T? Find<T>(Exception e) where T : Exception
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
            if (x is T t) return t;
        return null;
    }

    /// <summary>The <c>error.message</c> of an OpenAI-style error body, shortened, as <c>": …"</c>; empty when there is none.</summary>
    private static string ServerMessage(ClientResultException c)
    {
        try
        {
            var body = c.GetRawResponse()?.Content?.ToString();
            if (string.IsNullOrWhiteSpace(body) || body.TrimStart()[0] != '{') return "";
            using var doc = JsonDocument.Parse(body);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("error", out var error)) return "";
            var message = error.ValueKind == JsonValueKind.String ? error.GetString()
                : error.ValueKind == JsonValueKind.Object && error.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString()
                : null;
            if (string.IsNullOrWhiteSpace(message)) return "";
            message = string.Join(' ', message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
            return ": " + (message.Length > 200 ? message[..200] + "…" : message);
        }
        catch (Exception x) when (x is JsonException or InvalidOperationException or ObjectDisposedException)
        {
            return "";
        }
    }

    /// <summary>Removes the API key from a text (defence in depth: a server may echo anything).</summary>
    private string Redact(string text) => _key is null ? text : text.Replace(_key, "[redacted]", StringComparison.Ordinal);

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _ownedChat?.Dispose();
        _http?.Dispose();
        _limiter?.Dispose();
        _slots.Dispose();
    }

    /// <summary>One request ran past the per-request timeout.</summary>
    private sealed class JudgeTimeoutException : Exception
    {
        public JudgeTimeoutException() : base("the judge request timed out.") { }
    }

    /// <summary>Sends no Authorization header (for local servers that need no key).</summary>
    private sealed class NoAuthorizationPolicy : PipelinePolicy
    {
        public override void Process(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
        {
            message.Request.Headers.Remove("Authorization");
            ProcessNext(message, pipeline, currentIndex);
        }

        public override ValueTask ProcessAsync(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
        {
            message.Request.Headers.Remove("Authorization");
            return ProcessNextAsync(message, pipeline, currentIndex);
        }
    }
}
