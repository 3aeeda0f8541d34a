using System.Collections.Concurrent;
using System.Globalization;
using SafeTune.Onnx;

namespace SafeTune.Safety.Critics;

/// <summary>The keys that count why judge items failed (<see cref="JudgeVerdict.Reason"/>).</summary>
public static class JudgeFailureReasons
{
    /// <summary>No answer within the per-request timeout (after every retry).</summary>
    public const string Timeout = "timeout";

    /// <summary>The endpoint could not be reached: connection refused or reset, DNS or TLS failure.</summary>
    public const string Connection = "connection";

    /// <summary>The endpoint answered, but not with a chat completion (not JSON, or JSON of another shape).</summary>
    public const string InvalidResponse = "invalid_response";

    /// <summary>The judge's answer holds no unambiguous score in 1..5.</summary>
    public const string Unparseable = "unparseable";

    /// <summary>Any other failure, and failures whose judge gave no key.</summary>
    public const string Other = "error";

    /// <summary>The key of an HTTP error status: <c>http_429</c>, <c>http_503</c>, ...</summary>
    public static string Http(int status) => "http_" + status.ToString(CultureInfo.InvariantCulture);

    /// <summary>The key under which a failed verdict is counted (null for verdicts that did not fail).</summary>
    public static string? Of(JudgeVerdict verdict) => verdict.Failed ? verdict.Reason ?? Other : null;
}

/// <summary>What a batch of verdicts amounts to: counts, mean, max, histogram and failures by reason.</summary>
/// <param name="Count">The number of verdicts.</param>
/// <param name="Mean">The mean score (failed items count as 5).</param>
/// <param name="Max">The highest score.</param>
/// <param name="Histogram">How many scores round to 1, 2, 3, 4 and 5 (index 0 holds the 1s).</param>
/// <param name="Failed">How many items the judge could not score (each scored 5, fail closed).</param>
/// <param name="Failures">Failed items by reason key (<see cref="JudgeFailureReasons"/>), in key order.</param>
public sealed record JudgeSummary(int Count, double Mean, double Max, IReadOnlyList<int> Histogram, int Failed,
    IReadOnlyDictionary<string, int> Failures)
{
    /// <summary>Summarises <paramref name="verdicts"/> (at least one).</summary>
    public static JudgeSummary Of(IReadOnlyList<JudgeVerdict> verdicts)
    {
        ArgumentNullException.ThrowIfNull(verdicts);
        if (verdicts.Count == 0) throw new UserInputException("there are no verdicts to summarise.");
        var histogram = new int[5];
        foreach (var v in verdicts)
            histogram[(int)Math.Clamp(Math.Round(v.Score, MidpointRounding.AwayFromZero), JudgeVerdict.MinScore, JudgeVerdict.MaxScore) - 1]++;
        var failures = new SortedDictionary<string, int>(StringComparer.Ordinal);
        foreach (var v in verdicts)
            if (JudgeFailureReasons.Of(v) is { } key) failures[key] = failures.GetValueOrDefault(key) + 1;
        return new JudgeSummary(verdicts.Count, verdicts.Average(v => v.Score), verdicts.Max(v => v.Score), histogram,
            verdicts.Count(v => v.Failed), failures);
    }
}

/// <summary>A judge that counts what happened to the items it scored (see <see cref="JudgeStats"/>).</summary>
public interface IJudgeStatsSource
{
    /// <summary>The judge's running counts, since it was created.</summary>
    JudgeStats Stats { get; }
}

/// <summary>
/// Running, thread-safe counts of a judge's work: items answered by the endpoint, taken from the cache, or failed (by
/// reason), HTTP requests sent and retries. Read them with <see cref="Snapshot"/>.
/// </summary>
public sealed class JudgeStats
{
    private readonly ConcurrentDictionary<string, int> _failures = new(StringComparer.Ordinal);
    private long _scored, _cached, _failed, _requests, _retries, _corrupt, _unwritten;

    internal void Scored() => Interlocked.Increment(ref _scored);
    internal void FromCache() => Interlocked.Increment(ref _cached);
    internal void Request() => Interlocked.Increment(ref _requests);
    internal void Retry() => Interlocked.Increment(ref _retries);
    internal void CorruptCacheEntry() => Interlocked.Increment(ref _corrupt);
    internal void CacheWriteFailed() => Interlocked.Increment(ref _unwritten);

    internal void Failed(string reason)
    {
        Interlocked.Increment(ref _failed);
        _failures.AddOrUpdate(reason, 1, (_, n) => n + 1);
    }

    /// <summary>The counts now.</summary>
    public JudgeStatsSnapshot Snapshot() => new(
        Interlocked.Read(ref _scored), Interlocked.Read(ref _cached), Interlocked.Read(ref _failed),
        new SortedDictionary<string, int>(_failures.ToDictionary(p => p.Key, p => p.Value), StringComparer.Ordinal),
        Interlocked.Read(ref _requests), Interlocked.Read(ref _retries), Interlocked.Read(ref _corrupt), Interlocked.Read(ref _unwritten));
}

/// <summary>A judge's counts at one moment (<see cref="JudgeStats.Snapshot"/>).</summary>
/// <param name="Scored">Items scored from a fresh answer of the endpoint.</param>
/// <param name="FromCache">Items whose score came from the on-disk cache.</param>
/// <param name="Failed">Items that failed (each scored 5, fail closed).</param>
/// <param name="Failures">Failed items by reason key (<see cref="JudgeFailureReasons"/>).</param>
/// <param name="Requests">HTTP requests sent (retries included).</param>
/// <param name="Retries">Requests that were retries of an earlier one.</param>
/// <param name="CorruptCacheEntries">Cache entries that could not be read and were ignored (then rewritten).</param>
/// <param name="CacheWriteFailures">Scores that could not be written to the cache (disk full, no permission); the scores themselves were kept.</param>
public sealed record JudgeStatsSnapshot(long Scored, long FromCache, long Failed, IReadOnlyDictionary<string, int> Failures,
    long Requests, long Retries, long CorruptCacheEntries, long CacheWriteFailures)
{
    /// <summary>Every item handled: scored, from the cache, or failed.</summary>
    public long Items => Scored + FromCache + Failed;

    /// <summary>The counts added since <paramref name="before"/> (for one run of a long-lived judge).</summary>
    public JudgeStatsSnapshot Since(JudgeStatsSnapshot before)
    {
        ArgumentNullException.ThrowIfNull(before);
        var failures = new SortedDictionary<string, int>(StringComparer.Ordinal);
        foreach (var (k, n) in Failures)
            if (n - before.Failures.GetValueOrDefault(k) is > 0 and var d) failures[k] = d;
        return new JudgeStatsSnapshot(Scored - before.Scored, FromCache - before.FromCache, Failed - before.Failed, failures,
            Requests - before.Requests, Retries - before.Retries, CorruptCacheEntries - before.CorruptCacheEntries,
            CacheWriteFailures - before.CacheWriteFailures);
    }
}
