using System.Diagnostics;
using System.Text.Json;
using SafeTune.TestSupport;

namespace SafeTune.Cli.Tests;

public sealed class DataCommandTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private Dictionary<string, string> Env(string mirror) => new()
    {
        ["SAFETUNE_DATA_MIRROR"] = mirror,
        ["SAFETUNE_CACHE"] = _dir.File("cache"),
        ["SAFETUNE_JUDGE_CACHE"] = _dir.File("judge"),
    };

    [Fact]
    public async Task Fetch_from_a_mirror_url_then_list_and_verify()
    {
        await using var server = LoopbackFileServer.Start(Repo.SharedData());
        var env = Env(server.BaseUrl);
        var fetch = CliProcess.Run(env, "data", "fetch", "advbench", "data:xstest");
        Assert.True(fetch.ExitCode == 0, fetch.Stderr);
        Assert.Contains("advbench: " + _dir.File("cache", "data", "advbench", "harmful_behaviors.csv"), fetch.Stdout);
        Assert.Equal(File.ReadAllBytes(Repo.SharedData("xstest", "xstest_prompts.csv")), File.ReadAllBytes(_dir.File("cache", "data", "xstest", "xstest_prompts.csv")));

        var list = CliProcess.Run(env, "data", "list", "--json");
        Assert.True(list.ExitCode == 0, list.Stderr);
        using var doc = JsonDocument.Parse(list.Stdout);
        var sets = doc.RootElement.GetProperty("sets").EnumerateArray().ToDictionary(s => s.GetProperty("name").GetString()!);
        Assert.Equal("ok", sets["advbench"].GetProperty("state").GetString());
        Assert.Equal("not fetched", sets["catqa"].GetProperty("state").GetString());
        Assert.Equal("CategorisedQuestionsToCsv", sets["catqa"].GetProperty("transform").GetString());
        Assert.StartsWith("https://", sets["catqa"].GetProperty("sources")[0].GetString());

        Assert.Equal(0, CliProcess.Run(env, "data", "verify", "advbench").ExitCode);
        File.AppendAllText(_dir.File("cache", "data", "advbench", "harmful_behaviors.csv"), "x");
        var verify = CliProcess.Run(env, "data", "verify", "all");
        verify.AssertUserError("advbench", "safetune data fetch");
        Assert.Contains("advbench: " + _dir.File("cache", "data", "advbench", "harmful_behaviors.csv") + ": checksum mismatch", verify.Stdout);
    }

    [Fact]
    public async Task A_missing_file_on_the_mirror_exits_2_naming_the_set_and_the_url()
    {
        await using var server = LoopbackFileServer.Start(_dir.File("empty"));
        CliProcess.Run(Env(server.BaseUrl + "/data"), "data", "fetch", "gsm8k-test")
            .AssertUserError("gsm8k-test", server.BaseUrl + "/data/gsm8k/test.jsonl", "404");
    }

    [Fact]
    public void An_unknown_set_lists_the_names() =>
        CliProcess.Run(Env(Repo.SharedData()), "data", "fetch", "advbenk").AssertUserError("advbenk", "advbench", "xstest");

    [Fact]
    public void Without_a_mirror_or_network_the_demo_stops_at_once_naming_the_set_and_the_variable()
    {
        // No network: every https request goes to a proxy that nothing answers.
        var env = Env("");
        env["HTTPS_PROXY"] = "http://127.0.0.1:1";
        env["https_proxy"] = "http://127.0.0.1:1";
        env["NO_PROXY"] = "";
        env["no_proxy"] = "";
        var clock = Stopwatch.StartNew();
        var demo = CliProcess.Run(env, "demo", "--out", _dir.File("out"));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"took {clock.Elapsed}");
        demo.AssertUserError("advbench", "SAFETUNE_DATA_MIRROR");
        Assert.False(Directory.Exists(_dir.File("cache", "demo")));
    }
}
