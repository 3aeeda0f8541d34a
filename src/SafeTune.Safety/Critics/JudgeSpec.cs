using System.Collections.Concurrent;
using System.Globalization;
using System.Text.RegularExpressions;
using SafeTune.Onnx;

namespace SafeTune.Safety.Critics;

/// <summary>Builds a judge from a parsed spec (see <see cref="JudgeSpec.Register"/>).</summary>
public delegate ISafetyJudge JudgeFactory(JudgeSpecParts spec);

/// <summary>
/// Judges named by one string, for command lines and experiment configs. The grammar is
/// <c>SCHEME[:ARGUMENT][?KEY=VALUE&amp;KEY=VALUE...]</c>: the scheme is the text before the first <c>:</c> or <c>?</c>,
/// the argument runs to the first <c>?</c>, and option values are URL-decoded (write <c>%26</c> for <c>&amp;</c>,
/// <c>%3F</c> for <c>?</c>). Built in:
/// <list type="bullet">
/// <item><c>keyword</c>, <c>keyword:FILE</c>, with <c>?match=substring|prefix</c>: the keyword refusal judge
/// (<see cref="KeywordRefusalJudge"/>; FILE as for <see cref="KeywordRefusalJudge.FromFile"/>).</item>
/// <item><c>openai:BASE_URL?model=NAME</c>, with the options <c>key_env=VAR</c> (default
/// <see cref="OpenAiJudgeOptions.DefaultApiKeyVariable"/>; naming one makes it required), <c>timeout=SECONDS</c> (30),
/// <c>rps=N</c> (0: no limit), <c>concurrency=N</c> (4), <c>retries=N</c> (3), <c>backoff=SECONDS</c> (1),
/// <c>max_backoff=SECONDS</c> (30), <c>cache=DIR</c>, <c>format=rubric|conversation</c> and <c>max_tokens=N</c> (512):
/// <see cref="OpenAiCompatibleJudge"/>. The key never goes into the spec, only the name of its variable.</item>
/// </list>
/// <item><c>onnx:JUDGE</c>: a local classifier judge (<see cref="Local.LocalClassifierJudge.Load"/>); <c>minilm[?cache=DIR]</c>:
/// the default local MiniLM judge, built on first use (<see cref="Local.LocalClassifierJudge.BuildOrLoad"/>).</item>
/// More schemes are added with one line in the table below, or from another assembly with <see cref="Register"/>.
/// </summary>
public static partial class JudgeSpec
{
    private static readonly ConcurrentDictionary<string, (string Syntax, JudgeFactory Factory)> Schemes = new(StringComparer.Ordinal)
    {
        ["keyword"] = ("keyword[:FILE][?match=substring|prefix]", Keyword),
        ["onnx"] = ("onnx:JUDGE (a local classifier judge: its folder, judge.json or judge.onnx)", LocalClassifier),
        ["minilm"] = ("minilm[?cache=DIR] (the local MiniLM classifier judge, built on first use)", MiniLm),
        ["openai"] = ("openai:BASE_URL?model=NAME[&key_env=VAR&timeout=S&rps=N&concurrency=N&retries=N&backoff=S&max_backoff=S&cache=DIR&format=rubric|conversation&max_tokens=N]", OpenAi),
    };

    [GeneratedRegex("^[a-z][a-z0-9_-]*$")]
    private static partial Regex SchemeName();

    /// <summary>The syntax of every registered scheme, in name order (for help texts).</summary>
    public static IReadOnlyList<string> Syntax => [.. Schemes.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => p.Value.Syntax)];

    /// <summary>Adds (or replaces) a scheme: <paramref name="factory"/> builds the judge from the parsed spec.</summary>
    /// <param name="scheme">Lowercase letters, digits, <c>-</c> and <c>_</c>, starting with a letter.</param>
    /// <param name="syntax">How the spec is written, for help texts and errors.</param>
    /// <param name="factory">Builds the judge; it throws <see cref="UserInputException"/> (see <see cref="JudgeSpecParts.Error"/>) on bad options.</param>
    public static void Register(string scheme, string syntax, JudgeFactory factory)
    {
        ArgumentNullException.ThrowIfNull(scheme);
        ArgumentException.ThrowIfNullOrWhiteSpace(syntax);
        ArgumentNullException.ThrowIfNull(factory);
        if (!SchemeName().IsMatch(scheme)) throw new UserInputException($"'{scheme}' is not a judge scheme name (lowercase letters, digits, - and _).");
        Schemes[scheme] = (syntax, factory);
    }

    /// <summary>Builds the judge named by <paramref name="spec"/>.</summary>
    /// <exception cref="UserInputException">The spec is malformed, names no known judge, or has a bad option; the message names the part at fault.</exception>
    /// <exception cref="FileNotFoundException">A file named by the spec does not exist.</exception>
    /// <exception cref="InvalidDataException">A file named by the spec is malformed.</exception>
    public static ISafetyJudge Parse(string spec)
    {
        var parts = Split(spec);
        if (!Schemes.TryGetValue(parts.Scheme, out var entry))
            throw parts.Error($"unknown judge '{parts.Scheme}'; known: {string.Join(", ", Schemes.Keys.Order(StringComparer.Ordinal))}");
        return entry.Factory(parts);
    }

    /// <summary>Splits <paramref name="spec"/> into scheme, argument and options (no judge is built).</summary>
    /// <exception cref="UserInputException">The spec is empty or malformed.</exception>
    public static JudgeSpecParts Split(string spec)
    {
        if (string.IsNullOrWhiteSpace(spec)) throw new UserInputException("the judge spec is empty; known judges: " + string.Join(", ", Schemes.Keys.Order(StringComparer.Ordinal)));
        var text = spec.Trim();
        int query = text.IndexOf('?');
        var head = query < 0 ? text : text[..query];
        int colon = head.IndexOf(':');
        var scheme = (colon < 0 ? head : head[..colon]).Trim().ToLowerInvariant();
        string? argument = colon < 0 ? null : head[(colon + 1)..];
        var display = RedactUserInfo(head);
        if (!SchemeName().IsMatch(scheme))
            throw new UserInputException($"judge spec '{display}': '{scheme}' is not a judge name; known: {string.Join(", ", Schemes.Keys.Order(StringComparer.Ordinal))}");
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        if (query >= 0)
        {
            foreach (var pair in text[(query + 1)..].Split('&'))
            {
                if (pair.Length == 0) continue;
                int eq = pair.IndexOf('=');
                var name = (eq < 0 ? pair : pair[..eq]).Trim().ToLowerInvariant();
                if (name.Length == 0) throw new UserInputException($"judge spec '{display}': an option has no name (write KEY=VALUE).");
                if (eq < 0) throw new UserInputException($"judge spec '{display}': option '{name}' has no value (write {name}=VALUE).");
                if (!options.TryAdd(name, Uri.UnescapeDataString(pair[(eq + 1)..])))
                    throw new UserInputException($"judge spec '{display}': option '{name}' is given twice.");
            }
        }
        return new JudgeSpecParts(display, scheme, string.IsNullOrEmpty(argument) ? null : argument, options);
    }


    private static string RedactUserInfo(string text) => UserInfo().Replace(text, "//[credentials removed]@");

    [GeneratedRegex("//[^/@?#]*@")]
    private static partial Regex UserInfo();

    private static ISafetyJudge LocalClassifier(JudgeSpecParts spec)
    {
        spec.Check();
        if (spec.Argument is not { Length: > 0 } path) throw spec.Error("onnx needs the judge's folder after the colon");
        return Local.LocalClassifierJudge.Load(path);
    }

    private static ISafetyJudge MiniLm(JudgeSpecParts spec)
    {
        spec.Check("cache");
        if (spec.Argument is { Length: > 0 }) throw spec.Error("minilm takes no argument; name the cache folder with ?cache=DIR");
        return Local.LocalClassifierJudge.BuildOrLoad(spec.Get("cache") ?? Local.LocalClassifierJudge.DefaultCacheDirectory);
    }

    private static ISafetyJudge Keyword(JudgeSpecParts spec)
    {
        spec.Check("match");
        var match = spec.Choice("match", "substring", "substring", "prefix") == "prefix" ? KeywordMatch.Prefix : KeywordMatch.Substring;
        return spec.Argument is null ? new KeywordRefusalJudge(match: match) : KeywordRefusalJudge.FromFile(spec.Argument, match);
    }

    private static ISafetyJudge OpenAi(JudgeSpecParts spec)
    {
        spec.Check("model", "key_env", "timeout", "rps", "concurrency", "retries", "backoff", "max_backoff", "cache", "format", "max_tokens");
        if (spec.Argument is null) throw spec.Error("give the endpoint's base URL, e.g. openai:http://127.0.0.1:8000/v1?model=NAME");
        if (!Uri.TryCreate(spec.Argument, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
            throw spec.Error("the base URL must be an absolute http:// or https:// URL, e.g. http://127.0.0.1:8000/v1");
        if (url.UserInfo.Length > 0)
            throw spec.Error($"the base URL must not hold credentials; put the key in an environment variable and name it with key_env=VAR (default {OpenAiJudgeOptions.DefaultApiKeyVariable})");
        var model = spec.Get("model") ?? throw spec.Error("option model=NAME is required (the judge model as the endpoint names it)");
        var keyEnv = spec.Get("key_env");
        var defaults = new OpenAiJudgeOptions { BaseUrl = url, Model = model };
        var backoff = spec.Seconds("backoff", defaults.RetryDelay, allowZero: true);
        var maxBackoff = spec.Seconds("max_backoff", TimeSpan.FromTicks(Math.Max(defaults.MaxRetryDelay.Ticks, backoff.Ticks)), allowZero: true);
        if (maxBackoff < backoff) throw spec.Error("max_backoff must not be below backoff");
        var options = defaults with
        {
            ApiKeyVariable = keyEnv ?? OpenAiJudgeOptions.DefaultApiKeyVariable,
            ApiKeyRequired = keyEnv is not null,
            Timeout = spec.Seconds("timeout", defaults.Timeout, allowZero: false),
            RequestsPerSecond = spec.Number("rps", defaults.RequestsPerSecond, 0),
            Concurrency = spec.Integer("concurrency", defaults.Concurrency, 1),
            Retries = spec.Integer("retries", defaults.Retries, 0),
            RetryDelay = backoff,
            MaxRetryDelay = maxBackoff,
            CacheDirectory = spec.Get("cache"),
            Format = spec.Choice("format", "rubric", "rubric", "conversation") == "conversation" ? JudgePromptFormat.Conversation : JudgePromptFormat.Rubric,
            MaxTokens = spec.Integer("max_tokens", defaults.MaxTokens, 1),
        };
        if (keyEnv is not null && string.IsNullOrEmpty(Environment.GetEnvironmentVariable(keyEnv)))
            throw spec.Error($"key_env={keyEnv}: the environment variable {keyEnv} is not set");
        return new OpenAiCompatibleJudge(options);
    }
}

/// <summary>A judge spec split into its parts (<see cref="JudgeSpec.Split"/>), with typed option readers whose errors name the option.</summary>
/// <param name="Display">The spec without its options (credentials in a URL removed), for messages.</param>
/// <param name="Scheme">The judge's name, lowercase.</param>
/// <param name="Argument">The text after the first <c>:</c> (a file, a URL), or null.</param>
/// <param name="Options">The <c>?KEY=VALUE</c> options, names lowercase, values URL-decoded.</param>
public sealed record JudgeSpecParts(string Display, string Scheme, string? Argument, IReadOnlyDictionary<string, string> Options)
{
    /// <summary>A <see cref="UserInputException"/> whose message starts with the spec.</summary>
    public UserInputException Error(string message) => new($"judge spec '{Display}': {message}.");

    /// <summary>Rejects options not in <paramref name="known"/> (the error names the option, never its value).</summary>
    public void Check(params string[] known)
    {
        foreach (var name in Options.Keys)
            if (!known.Contains(name))
                throw Error(known.Length == 0 ? $"'{Scheme}' takes no options, but '{name}' was given"
                    : $"unknown option '{name}' (known: {string.Join(", ", known)})" + (name.Contains("key", StringComparison.Ordinal) && known.Contains("key_env")
                        ? "; API keys are read from the environment variable named by key_env" : ""));
    }

    /// <summary>The value of option <paramref name="name"/>, or null.</summary>
    public string? Get(string name) => Options.TryGetValue(name, out var v) && v.Length > 0 ? v : null;

    /// <summary>An option that must be one of <paramref name="choices"/> (case-insensitive).</summary>
    public string Choice(string name, string fallback, params string[] choices)
    {
        var v = Get(name)?.Trim().ToLowerInvariant();
        if (v is null) return fallback;
        return choices.Contains(v) ? v : throw Error($"option {name}={Options[name]} must be one of {string.Join(", ", choices)}");
    }

    /// <summary>A finite number of at least <paramref name="min"/>.</summary>
    public double Number(string name, double fallback, double min)
    {
        if (Get(name) is not { } text) return fallback;
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || !double.IsFinite(v))
            throw Error($"option {name}={text} is not a number");
        return v >= min ? v : throw Error(string.Create(CultureInfo.InvariantCulture, $"option {name}={text} must be at least {min}"));
    }

    /// <summary>A whole number of at least <paramref name="min"/>.</summary>
    public int Integer(string name, int fallback, int min)
    {
        if (Get(name) is not { } text) return fallback;
        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v))
            throw Error($"option {name}={text} is not a whole number");
        return v >= min ? v : throw Error(string.Create(CultureInfo.InvariantCulture, $"option {name}={text} must be at least {min}"));
    }

    /// <summary>A duration in seconds (fractions allowed): positive, or also 0 when <paramref name="allowZero"/>.</summary>
    public TimeSpan Seconds(string name, TimeSpan fallback, bool allowZero)
    {
        if (Get(name) is not { } text) return fallback;
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || !double.IsFinite(v) || v > 86_400)
            throw Error($"option {name}={text} is not a number of seconds");
        if (v < 0 || (v == 0 && !allowZero)) throw Error($"option {name}={text} must be {(allowZero ? "at least 0" : "positive")} seconds");
        return TimeSpan.FromSeconds(v);
    }
}
