using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using SafeTune.Onnx;

namespace SafeTune.Data.Public;

/// <summary>A public data set that cannot be had: not published, not reachable, refused by its checksum, or not cacheable.</summary>
public sealed class PublicDataException(string message, Exception? inner = null) : IOException(message, inner);

/// <summary>Where a <see cref="PublicDataStore"/> keeps and finds files, and how it fetches them: cache, mirror, HTTP handler, retries and timeout.</summary>
public sealed record PublicDataStoreOptions
{
    /// <summary>Where fetched sets are kept (default <see cref="PublicDataStore.DefaultCacheDirectory"/>).</summary>
    public string? CacheDirectory { get; init; }
    /// <summary>A folder or an http(s) URL laid out like the cache, used instead of the canonical sources (default: none).</summary>
    public string? Mirror { get; init; }
    /// <summary>The HTTP handler (default: a shared one that follows redirects).</summary>
    public HttpMessageHandler? Handler { get; init; }
    /// <summary>Tries per file when a transfer breaks off or the server fails (5xx); each try resumes where the last stopped.</summary>
    public int Attempts { get; init; } = 4;
    /// <summary>How long one request may wait for the server's next bytes.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>The environment variable the messages tell the user to set for a mirror (default <see cref="PublicDataStore.MirrorVariable"/>).</summary>
    public string MirrorVariable { get; init; } = PublicDataStore.MirrorVariable;
}

/// <summary>Where a set was found by <see cref="PublicDataStore.Check"/>.</summary>
public enum PublicDataState
{
    /// <summary>Present, with the registered checksum.</summary>
    Ok,
    /// <summary>Not fetched yet (or missing from the mirror folder).</summary>
    Missing,
    /// <summary>Present with another checksum.</summary>
    Corrupt,
}

/// <summary>The outcome of <see cref="PublicDataStore.Check"/>.</summary>
/// <param name="Set">The set.</param>
/// <param name="State">What was found.</param>
/// <param name="Path">Where the file is or would be.</param>
/// <param name="Sha256">The file's checksum, when present.</param>
public sealed record PublicDataCheck(PublicDataSet Set, PublicDataState State, string Path, string? Sha256);

/// <summary>
/// Finds the registered public data sets on this machine, fetching them when needed. A mirror folder
/// (<see cref="MirrorVariable"/>) is read in place; otherwise a set is downloaded once, from the mirror URL or from its
/// canonical sources, into the cache folder. Downloads resume where a broken transfer stopped (the bytes so far wait in
/// <c>.downloads/</c> under the cache), the result is checked against the registered SHA-256 before it is renamed into
/// place, and a file that fails the check is never cached.
/// </summary>
public sealed class PublicDataStore : IDisposable
{
    /// <summary>The environment variable naming a mirror: a folder, or an http(s) URL, laid out like <c>advbench/harmful_behaviors.csv</c>.</summary>
    public const string MirrorVariable = "SAFETUNE_DATA_MIRROR";

    /// <summary>The environment variable naming a mirror of the public models: a folder, or an http(s) URL, laid out like <c>stories260k/config.json</c>.</summary>
    public const string ModelMirrorVariable = "SAFETUNE_MODEL_MIRROR";

    private static readonly Lazy<HttpMessageHandler> SharedHandler = new(() => new SocketsHttpHandler
    {
        AllowAutoRedirect = true,
        AutomaticDecompression = DecompressionMethods.None,
        ConnectTimeout = TimeSpan.FromSeconds(15),
    });
    private static readonly ConcurrentDictionary<(string Path, long Length, DateTime Written), string> Hashes = new();

    private readonly HttpClient _http;
    private readonly int _attempts;
    private readonly string _variable;

    /// <summary>A store with <paramref name="options"/>.</summary>
    public PublicDataStore(PublicDataStoreOptions? options = null)
    {
        options ??= new PublicDataStoreOptions();
        if (options.Attempts < 1) throw new UserInputException($"Attempts must be at least 1, not {options.Attempts}");
        CacheDirectory = Path.GetFullPath(options.CacheDirectory ?? DefaultCacheDirectory);
        Mirror = options.Mirror is { Length: > 0 } m ? (IsUrl(m) ? m.TrimEnd('/') : Path.GetFullPath(m)) : null;
        _http = new HttpClient(options.Handler ?? SharedHandler.Value, disposeHandler: false) { Timeout = options.Timeout };
        _http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("SafeTune", typeof(PublicDataStore).Assembly.GetName().Version?.ToString(3) ?? "0"));
        _attempts = options.Attempts;
        _variable = options.MirrorVariable;
    }

    /// <summary>A store with the environment's mirror (<see cref="MirrorVariable"/>) and the default cache folder.</summary>
    public static PublicDataStore Default => new(new PublicDataStoreOptions { Mirror = Environment.GetEnvironmentVariable(MirrorVariable) });

    /// <summary>
    /// A store of the public models (<see cref="PublicModels"/>): the environment's model mirror
    /// (<see cref="ModelMirrorVariable"/>) and the cache folder <see cref="DefaultModelCacheDirectory"/>.
    /// </summary>
    public static PublicDataStore Models => new(new PublicDataStoreOptions
    {
        CacheDirectory = DefaultModelCacheDirectory,
        Mirror = Environment.GetEnvironmentVariable(ModelMirrorVariable),
        MirrorVariable = ModelMirrorVariable,
    });

    /// <summary><c>$SAFETUNE_CACHE/data</c>, else <c>$XDG_CACHE_HOME/safetune/data</c>, else <c>~/.cache/safetune/data</c>.</summary>
    public static string DefaultCacheDirectory => CacheFolder("data");

    /// <summary><c>$SAFETUNE_CACHE/models</c>, else <c>$XDG_CACHE_HOME/safetune/models</c>, else <c>~/.cache/safetune/models</c>.</summary>
    public static string DefaultModelCacheDirectory => CacheFolder("models");

    private static string CacheFolder(string kind) =>
        Environment.GetEnvironmentVariable("SAFETUNE_CACHE") is { Length: > 0 } cache ? Path.Combine(Path.GetFullPath(cache), kind)
        : Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "safetune", kind);

    /// <summary>The cache folder.</summary>
    public string CacheDirectory { get; }

    /// <summary>The mirror (a full folder path or a URL without a trailing slash), if any.</summary>
    public string? Mirror { get; }

    /// <summary>True when the mirror is a folder, read in place.</summary>
    public bool MirrorIsFolder => Mirror is not null && !IsUrl(Mirror);

    /// <summary>
    /// The folder that holds the sets once <see cref="Resolve"/> has returned for each: the mirror folder, or the cache.
    /// </summary>
    public string DataDirectory => MirrorIsFolder ? Mirror! : CacheDirectory;

    /// <summary>The local path of <paramref name="set"/>, checked against its SHA-256; fetched into the cache first when needed.</summary>
    /// <exception cref="PublicDataException">The set cannot be had; the message names the set, the file or URL at fault, and what to set.</exception>
    public string Resolve(PublicDataSet set, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(set);
        if (MirrorIsFolder)
        {
            var path = set.PathUnder(Mirror!);
            if (!File.Exists(path))
                throw new PublicDataException($"{set.Name}: {path} is not in the mirror folder ({_variable}={Mirror}); copy {set.File} there or unset {_variable}");
            var sha = Sha256Of(path);
            if (sha != set.Sha256)
                throw new PublicDataException($"{set.Name}: {path} has SHA-256 {sha}, not the registered {set.Sha256}; replace it with the published file");
            return path;
        }
        var cached = set.PathUnder(CacheDirectory);
        if (File.Exists(cached) && Sha256Of(cached) == set.Sha256) return cached;
        Fetch(set, cancellation);
        return cached;
    }

    /// <summary>Where <paramref name="set"/> is and whether it matches its checksum, without fetching anything.</summary>
    public PublicDataCheck Check(PublicDataSet set)
    {
        ArgumentNullException.ThrowIfNull(set);
        var path = set.PathUnder(DataDirectory);
        if (!File.Exists(path)) return new PublicDataCheck(set, PublicDataState.Missing, path, null);
        var sha = Sha256Of(path);
        return new PublicDataCheck(set, sha == set.Sha256 ? PublicDataState.Ok : PublicDataState.Corrupt, path, sha);
    }

    /// <summary>
    /// Downloads <paramref name="set"/> (from the mirror URL, else from its sources), applies its transform, checks the
    /// result's SHA-256 and renames it into the cache. With a mirror folder this only checks the file there.
    /// </summary>
    /// <returns>The local path.</returns>
    /// <exception cref="PublicDataException">The download failed, the checksum did not match (nothing is cached), or the cache cannot be written.</exception>
    public string Fetch(PublicDataSet set, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(set);
        if (MirrorIsFolder) return Resolve(set, cancellation);
        IReadOnlyList<PublicDataSource> sources = Mirror is not null ? [new PublicDataSource(Mirror + "/" + set.File)] : set.Sources;
        var transform = Mirror is not null ? PublicDataTransform.None : set.Transform;
        if (sources.Count == 0)
            throw new PublicDataException($"{set.Name}: no public file holds this set ({set.Origin}); set {_variable} to a folder or URL that holds {set.File}");

        var final = set.PathUnder(CacheDirectory);
        var downloads = Path.Combine(CacheDirectory, ".downloads");
        CreateFolder(set, Path.GetDirectoryName(final)!);
        CreateFolder(set, downloads);
        var parts = new List<string>(sources.Count);
        for (int i = 0; i < sources.Count; i++)
        {
            var part = Path.Combine(downloads, $"{set.Name}.{i}.part");
            Download(set, sources[i].Url, part, cancellation);
            parts.Add(part);
        }

        var temp = final + $".tmp-{Environment.ProcessId}-{Guid.NewGuid():N}";
        try
        {
            try
            {
                using var output = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
                PublicDataTransforms.Apply(set with { Transform = transform }, parts, output);
                output.Flush(flushToDisk: true);
            }
            catch (InvalidDataException e)
            {
                DeleteAll(parts);
                throw new PublicDataException($"{set.Name}: {Describe(sources)} is not in the published form ({e.Message}); nothing was cached", e);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException && e is not PublicDataException)
            {
                throw NotWritable(set, e);
            }
            var sha = Sha256Of(temp);
            if (sha != set.Sha256)
            {
                DeleteAll(parts);
                throw new PublicDataException($"{set.Name}: checksum mismatch for {Describe(sources)}: SHA-256 {sha}, expected {set.Sha256}; the file was refused and nothing was cached");
            }
            try { File.Move(temp, final, overwrite: true); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw NotWritable(set, e); }
            DeleteAll(parts);
            return final;
        }
        finally
        {
            try { if (File.Exists(temp)) File.Delete(temp); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* the original outcome stands */ }
        }
    }

    /// <summary>SHA-256 (lower-case hex) of a file, remembered while the file's size and time stay the same.</summary>
    public static string Sha256Of(string path)
    {
        var info = new FileInfo(path);
        var key = (info.FullName, info.Length, info.LastWriteTimeUtc);
        if (Hashes.TryGetValue(key, out var known)) return known;
        using var stream = File.OpenRead(path);
        var sha = Convert.ToHexStringLower(SHA256.HashData(stream));
        Hashes[key] = sha;
        return sha;
    }

    /// <inheritdoc/>
    public void Dispose() => _http.Dispose();

    private void Download(PublicDataSet set, string url, string part, CancellationToken cancellation)
    {
        Exception? last = null;
        for (int attempt = 1; attempt <= _attempts; attempt++)
        {
            cancellation.ThrowIfCancellationRequested();
            long have = File.Exists(part) ? new FileInfo(part).Length : 0;
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            if (have > 0) request.Headers.Range = new RangeHeaderValue(have, null);
            HttpResponseMessage response;
            try { response = _http.Send(request, HttpCompletionOption.ResponseHeadersRead, cancellation); }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !cancellation.IsCancellationRequested)
            {
                // No answer at all on the first try (no network, no such host, refused): say so at once rather than wait.
                if (attempt == 1 && have == 0) throw Unreachable(set, url, e);
                last = e;
                Pause(attempt, cancellation);
                continue;
            }
            using (response)
            {
                if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
                {
                    DeleteFile(part);
                    last = new IOException($"{url} refused to resume at byte {have}");
                    continue;
                }
                if (!response.IsSuccessStatusCode)
                {
                    var status = $"{(int)response.StatusCode} {response.ReasonPhrase}";
                    if ((int)response.StatusCode >= 500) { last = new IOException($"{url} answered {status}"); Pause(attempt, cancellation); continue; }
                    throw new PublicDataException($"{set.Name}: {url} answered {status}; set {_variable} to a folder or URL that holds {set.File}");
                }
                bool resume = have > 0 && response.StatusCode == HttpStatusCode.PartialContent;
                long? expected = response.Content.Headers.ContentLength is { } n ? n + (resume ? have : 0) : null;
                try
                {
                    using var output = new FileStream(part, resume ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
                    using var input = response.Content.ReadAsStream(cancellation);
                    input.CopyTo(output, 1 << 16);
                    output.Flush(flushToDisk: true);
                    if (expected is { } total && output.Length != total)
                        throw new IOException($"{url} ended after {output.Length} of {total} bytes");
                    return;
                }
                catch (UnauthorizedAccessException e)
                {
                    throw NotWritable(set, e);
                }
                catch (Exception e) when (e is IOException or HttpRequestException && !cancellation.IsCancellationRequested)
                {
                    last = e; // the transfer broke off: the next try resumes from what arrived
                    Pause(attempt, cancellation);
                }
            }
        }
        throw new PublicDataException($"{set.Name}: downloading {url} failed {_attempts} times ({last?.Message.TrimEnd('.')}); run again to resume, or set {_variable}", last);
    }

    private static void Pause(int attempt, CancellationToken cancellation) =>
        cancellation.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(Math.Min(4000, 250 * (1 << (attempt - 1)))));

    private PublicDataException Unreachable(PublicDataSet set, string url, Exception e) =>
        new($"{set.Name}: cannot download {url} ({Inner(e)}); set {_variable} to a folder or URL that holds {set.File}", e);

    private PublicDataException NotWritable(PublicDataSet set, Exception e) =>
        new($"{set.Name}: the cache {CacheDirectory} cannot be written ({e.Message.TrimEnd('.')}); set SAFETUNE_CACHE to a writable folder, or {_variable} to a folder that holds the sets", e);

    private void CreateFolder(PublicDataSet set, string folder)
    {
        try
        {
            Directory.CreateDirectory(folder);
            var probe = Path.Combine(folder, $".write-test-{Environment.ProcessId}-{Guid.NewGuid():N}");
            using (File.Create(probe, 1, FileOptions.DeleteOnClose)) { }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw NotWritable(set, e); }
    }

    private static string Inner(Exception e)
    {
        while (e.InnerException is not null && e is HttpRequestException or TaskCanceledException) e = e.InnerException;
        return e is TaskCanceledException ? "no answer in time" : e.Message.TrimEnd('.');
    }

    private static string Describe(IReadOnlyList<PublicDataSource> sources) =>
        sources.Count == 1 ? sources[0].Url : $"{sources[0].Url} and {sources.Count - 1} more";

    private static void DeleteAll(IEnumerable<string> paths)
    {
        foreach (var p in paths) DeleteFile(p);
    }

    private static void DeleteFile(string path)
    {
        try { if (File.Exists(path)) File.Delete(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* a later fetch starts it afresh */ }
    }

    private static bool IsUrl(string s) => s.StartsWith("http://", StringComparison.OrdinalIgnoreCase) || s.StartsWith("https://", StringComparison.OrdinalIgnoreCase);
}
