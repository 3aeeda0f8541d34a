using System.Text.Json;
using System.Text.Json.Nodes;
using SafeTune.Models.Demo;
using SafeTune.TestSupport;
using SafeTune.Training.Demo;

namespace SafeTune.Cli.Tests;

/// <summary>
/// <c>--model demo</c> (or <c>builtin:demo</c>) and <c>builtin:minilm</c> in every command that reads a model, and the one
/// demo cache that <c>safetune demo</c>, <c>serve --demo</c> and <c>--model demo</c> share.
/// </summary>
public sealed class NamedModelTests : IDisposable
{
    private readonly TinyChat _chat = new();
    private readonly string _root, _demo, _harmful, _harmless, _data;
    private readonly Dictionary<string, string> _env;

    public NamedModelTests()
    {
        _root = _chat.File("cache");
        _demo = DemoCacheStandIn.Write(_root, _chat);
        _env = new() { ["SAFETUNE_CACHE"] = _root };
        var train = DemoData.Train(7);
        _harmful = _chat.File("harmful.txt");
        _harmless = _chat.File("harmless.txt");
        File.WriteAllLines(_harmful, train.Where(e => e.Kind == DemoKind.Harmful).Select(e => e.Prompt.ReplaceLineEndings(" ")).Distinct().Take(10));
        File.WriteAllLines(_harmless, train.Where(e => e.Kind == DemoKind.Benign).Select(e => e.Prompt.ReplaceLineEndings(" ")).Distinct().Take(10));
        _data = _chat.File("attack.jsonl");
        File.WriteAllLines(_data, DemoData.Attack(7, 8, seed: 1).Select(e => new JsonObject { ["prompt"] = e.Prompt, ["response"] = e.Response }.ToJsonString()));
    }

    public void Dispose() => _chat.Dispose();

    private CliResult Run(params string[] args) => CliRunner.Run(TimeSpan.FromMinutes(2), _env, args);

    [Fact]
    public void The_demo_cache_has_one_layout()
    {
        // safetune demo keeps its model in ROOT/demo/model (DemoAssets), and that is where serve and --model demo look.
        Assert.Equal(Path.Combine(SafeTuneCache.Demo(_root), "model"), DemoModel.CacheFolder(_root));
        Assert.Equal(Path.Combine(_root, "demo", "model"), _demo);
    }

    [Fact]
    public void Train_eval_and_probe_take_the_demo_model_by_name_and_its_tokenizer()
    {
        var eval = Run("eval", "--model", "demo", "--harmful", _harmful, "--limit", "2", "--max-new-tokens", "2", "--no-loss", "--json");
        Assert.True(eval.ExitCode == 0, eval.Stderr);
        Assert.DoesNotContain("building the demo model", eval.Stderr);
        Assert.EndsWith("tokenizer_config.json (chat_template)", JsonDocument.Parse(eval.Stdout).RootElement.GetProperty("template").GetString());

        var run = _chat.File("run");
        var train = Run("train", "--model", "builtin:demo", "--data", _data, "--out", run, "--steps", "1", "--batch-size", "4", "--lora", "4",
            "--lora-alpha", "8", "--warmup", "0", "--max-length", "64", "--threads", "1", "--json");
        Assert.True(train.ExitCode == 0, train.Stderr);
        var options = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "options.json")))!;
        Assert.Equal(Path.Combine(_demo, "demo.onnx"), (string)options["model"]!);
        Assert.Equal(Path.Combine(_demo, "demo-kv.onnx"), (string)options["generation_model"]!);
        Assert.Equal(Path.Combine(_demo, "tokenizer.json"), (string)options["tokenizer"]!);
        Assert.True(File.Exists(Path.Combine(run, "model-kv.onnx")));

        var probe = _chat.File("probe.json");
        var trained = Run("probe", "train", "--model", "demo", "--harmful", _harmful, "--harmless", _harmless, "--max-length", "48", "--out", probe, "--json");
        Assert.True(trained.ExitCode == 0, trained.Stderr);
        Assert.Equal(Path.Combine(_demo, "demo.onnx"), (string)JsonNode.Parse(File.ReadAllText(probe))!["model"]!["path"]!);
        var scored = Run("probe", "score", "--probe", probe, "--model", "demo", "--data", _harmful, "--json");
        Assert.True(scored.ExitCode == 0, scored.Stderr);

        // Without the name, --tokenizer is still required.
        Run("eval", "--model", _chat.File("none.onnx"), "--harmful", _harmful).AssertUserError("--tokenizer is required");
    }

    [Fact]
    public void Probe_train_reads_the_packaged_MiniLM_as_builtin_minilm()
    {
        var probe = _chat.File("minilm.json");
        var r = Run("probe", "train", "--model", "builtin:minilm", "--harmful", _harmful, "--harmless", _harmless, "--max-length", "32", "--out", probe, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal("raw", JsonDocument.Parse(r.Stdout).RootElement.GetProperty("template").GetString());
        Assert.Equal(Path.Combine(_root, "minilm", "model.onnx"), (string)JsonNode.Parse(File.ReadAllText(probe))!["model"]!["path"]!);
        Assert.True(File.Exists(Path.Combine(_root, "minilm", "vocab.txt")));
    }

    [Theory]
    [InlineData("--demo")]
    [InlineData("--model", "demo")]
    public async Task Serve_demo_loads_what_the_demo_built(params string[] demo)
    {
        // The stand-in is not the recipe's trained model: serve answers from it at once, so it did not train one of its own.
        using var serve = CliProcess.Serve([.. demo, "--cache", _root]);
        using var http = new HttpClient();
        var models = JsonDocument.Parse(await http.GetStringAsync(new Uri(serve.BaseUrl + "/models"))).RootElement;
        Assert.Equal("safetune-demo", models.GetProperty("data")[0].GetProperty("id").GetString());
        Assert.Equal(["demo-kv.onnx", "demo.json", "demo.onnx", "generation_config.json", "tokenizer.json", "tokenizer_config.json"],
            Directory.GetFileSystemEntries(_demo).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }
}
