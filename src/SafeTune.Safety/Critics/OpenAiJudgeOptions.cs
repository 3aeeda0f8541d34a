using System.Globalization;
using SafeTune.Onnx;

namespace SafeTune.Safety.Critics;

/// <summary>What a chat judge is shown for each item.</summary>
public enum JudgePromptFormat
{
    /// <summary>
    /// One user message holding SafeTune's rubric with the request and response in it (<see cref="HarmRubric"/>);
    /// the answer is read with <see cref="RubricAnswer"/>. For general chat models (Qwen, Llama, GPT-4 class).
    /// </summary>
    Rubric,
    /// <summary>
    /// The conversation itself: a user turn with the request and an assistant turn with the response, and no
    /// instructions. For safety classifiers whose chat template does the judging (Llama Guard answers <c>safe</c> or
    /// <c>unsafe</c>, read as 1 or 5).
    /// </summary>
    Conversation,
}

/// <summary>Settings of an <see cref="OpenAiCompatibleJudge"/>.</summary>
public sealed record OpenAiJudgeOptions
{
    /// <summary>The environment variable the API key is read from when none is named.</summary>
    public const string DefaultApiKeyVariable = "SAFETUNE_JUDGE_API_KEY";

    /// <summary>The endpoint's base URL, up to and including the version segment: <c>http://127.0.0.1:8000/v1</c>.</summary>
    public required Uri BaseUrl { get; init; }

    /// <summary>The judge model's name, as the endpoint knows it.</summary>
    public required string Model { get; init; }

    /// <summary>
    /// The environment variable holding the API key (the key itself is never part of the options). When it is unset,
    /// no key is sent, which local servers accept, unless <see cref="ApiKeyRequired"/> is set.
    /// </summary>
    public string ApiKeyVariable { get; init; } = DefaultApiKeyVariable;

    /// <summary>When true, an unset or empty <see cref="ApiKeyVariable"/> is an error at construction.</summary>
    public bool ApiKeyRequired { get; init; }

    /// <summary>The longest wait for one HTTP request (each retry gets its own).</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Client-side rate limit in requests per second (retries included); 0 means no limit.</summary>
    public double RequestsPerSecond { get; init; }

    /// <summary>At most this many requests in flight at once.</summary>
    public int Concurrency { get; init; } = 4;

    /// <summary>Retries after a timeout, a connection error, HTTP 408, 429 or 5xx (0 = one attempt only).</summary>
    public int Retries { get; init; } = 3;

    /// <summary>The first retry's mean delay; later retries back off exponentially, with jitter.</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest delay between two attempts (also caps a server's <c>Retry-After</c>).</summary>
    public TimeSpan MaxRetryDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>A folder for the on-disk score cache (<see cref="JudgeCache"/>); null for none.</summary>
    public string? CacheDirectory { get; init; }

    /// <summary>What the judge is shown.</summary>
    public JudgePromptFormat Format { get; init; } = JudgePromptFormat.Rubric;

    /// <summary>The most tokens the judge may answer with (the rubric asks for a short reasoning, then the score).</summary>
    public int MaxTokens { get; init; } = 512;

    /// <summary>Checks the settings; the message names the one at fault.</summary>
    /// <exception cref="UserInputException">A setting is out of range.</exception>
    public void Validate()
    {
        var inv = CultureInfo.InvariantCulture;
        if (!BaseUrl.IsAbsoluteUri || BaseUrl.Scheme is not ("http" or "https"))
            throw new UserInputException("the judge's base URL must be an absolute http:// or https:// URL.");
        if (BaseUrl.UserInfo.Length > 0)
            throw new UserInputException($"the judge's base URL must not hold credentials; put the key in an environment variable and name it (key_env), default {DefaultApiKeyVariable}.");
        if (string.IsNullOrWhiteSpace(Model)) throw new UserInputException("the judge needs a model name.");
        if (string.IsNullOrWhiteSpace(ApiKeyVariable)) throw new UserInputException("the API key variable name must not be empty.");
        if (Timeout <= TimeSpan.Zero) throw new UserInputException(string.Create(inv, $"the judge timeout must be positive (got {Timeout.TotalSeconds} s)."));
        if (!(RequestsPerSecond >= 0) || double.IsInfinity(RequestsPerSecond))
            throw new UserInputException(string.Create(inv, $"the judge's requests per second must be 0 (no limit) or positive (got {RequestsPerSecond})."));
        if (Concurrency < 1) throw new UserInputException(string.Create(inv, $"the judge's concurrency must be at least 1 (got {Concurrency})."));
        if (Retries < 0) throw new UserInputException(string.Create(inv, $"the judge's retries must not be negative (got {Retries})."));
        if (RetryDelay < TimeSpan.Zero || MaxRetryDelay < RetryDelay)
            throw new UserInputException("the judge's retry delay must be at least 0 and at most the maximum retry delay.");
        if (MaxTokens < 1) throw new UserInputException(string.Create(inv, $"the judge's max tokens must be at least 1 (got {MaxTokens})."));
    }
}
