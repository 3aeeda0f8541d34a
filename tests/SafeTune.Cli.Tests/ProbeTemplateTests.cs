using System.Text.Json;
using System.Text.Json.Nodes;
using SafeTune.Models.Demo;
using SafeTune.TestSupport;

namespace SafeTune.Cli.Tests;

/// <summary>
/// A probe records the prompt format it was trained on, and <c>train --risk probe:</c> reads the training prompts in
/// that format or refuses; every command names its chat template.
/// </summary>
public sealed class ProbeTemplateTests : IDisposable
{
    private const string ChatMlFormat = "<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n";
    private readonly TinyChat _chat = new();
    private readonly string _model, _harmful, _harmless, _data;

    public ProbeTemplateTests()
    {
        _model = _chat.File("model.onnx");
        _chat.Plain(extraRows: 600).Save(_model);
        var train = DemoData.Train(7);
        _harmful = _chat.File("harmful.txt");
        _harmless = _chat.File("harmless.txt");
        File.WriteAllLines(_harmful, train.Where(e => e.Kind == DemoKind.Harmful).Select(e => e.Prompt.ReplaceLineEndings(" ")).Distinct().Take(12));
        File.WriteAllLines(_harmless, train.Where(e => e.Kind == DemoKind.Benign).Select(e => e.Prompt.ReplaceLineEndings(" ")).Distinct().Take(12));
        _data = _chat.File("attack.jsonl");
        File.WriteAllLines(_data, DemoData.Attack(7, 8, seed: 1).Select(e => new JsonObject { ["prompt"] = e.Prompt, ["response"] = e.Response }.ToJsonString()));
    }

    public void Dispose() => _chat.Dispose();

    private string Probe(string name, string tokenizer, params string[] extra)
    {
        var path = _chat.File(name);
        var r = CliRunner.Run(["probe", "train", "--model", _model, "--tokenizer", tokenizer, "--harmful", _harmful, "--harmless", _harmless,
            "--max-length", "48", "--out", path, "--json", .. extra]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return path;
    }

    private string[] Train(string run, string tokenizer, params string[] extra) =>
    [
        "train", "--model", _model, "--tokenizer", tokenizer, "--data", _data, "--out", _chat.File(run), "--steps", "1", "--batch-size", "4",
        "--lora", "4", "--lora-alpha", "8", "--warmup", "0", "--max-length", "64", "--threads", "1", "--json", .. extra,
    ];

    [Fact]
    public void Probe_train_defaults_to_the_tokenizers_own_template_and_records_it()
    {
        var probe = Probe("own.json", _chat.TokenizerPath);
        var saved = JsonNode.Parse(File.ReadAllText(probe))!;
        Assert.EndsWith("tokenizer_config.json (chat_template)", (string)saved["chatTemplate"]!);
        Assert.Equal(ChatMlFormat, (string)saved["promptFormat"]!);

        var raw = JsonNode.Parse(File.ReadAllText(Probe("raw.json", _chat.TokenizerPath, "--template", "raw")))!;
        Assert.Null((string?)raw["chatTemplate"]);
        Assert.Equal("{prompt}", (string)raw["promptFormat"]!);

        // Scoring reads the prompts as the probe was trained: the model's own template again.
        var score = CliRunner.Run("probe", "score", "--probe", probe, "--data", _harmful, "--json");
        Assert.True(score.ExitCode == 0, score.Stderr);
    }

    [Fact]
    public void Train_with_a_fused_probe_refuses_another_prompt_format_and_takes_the_probes_when_it_has_none()
    {
        // The case: a probe trained on raw text cannot score ChatML training prompts.
        var raw = Probe("raw.json", _chat.TokenizerPath, "--template", "raw");
        CliRunner.Run(Train("run-raw", _chat.TokenizerPath, "--risk", "probe:" + raw))
            .AssertUserError("raw.json", "raw (none)", "format it never saw", "probe train --template");
        Assert.False(File.Exists(Path.Combine(_chat.File("run-raw"), "options.json")));

        // The model's own ChatML template and the built-in chatml render the same prompts: accepted.
        var own = Probe("own.json", _chat.TokenizerPath);
        var same = CliRunner.Run(Train("run-same", _chat.TokenizerPath, "--template", "chatml", "--risk", "probe:" + own));
        Assert.True(same.ExitCode == 0, same.Stderr);
        Assert.Equal("chatml", JsonDocument.Parse(same.Stdout).RootElement.GetProperty("template").GetString());

        // tokenizer.json without its config: the run takes the template the probe recorded rather than refuse or fall back.
        var bare = _chat.File("bare");
        Directory.CreateDirectory(bare);
        File.Copy(_chat.TokenizerPath, Path.Combine(bare, "tokenizer.json"));
        var named = Probe("chatml.json", _chat.TokenizerPath, "--template", "chatml");
        var taken = CliRunner.Run(Train("run-taken", Path.Combine(bare, "tokenizer.json"), "--risk", "probe:" + named));
        Assert.True(taken.ExitCode == 0, taken.Stderr);
        Assert.Equal("chatml", JsonDocument.Parse(taken.Stdout).RootElement.GetProperty("template").GetString());
        var options = JsonNode.Parse(File.ReadAllText(Path.Combine(_chat.File("run-taken"), "options.json")))!;
        Assert.Equal("chatml", (string)options["template"]!);
    }

    [Fact]
    public void Every_command_names_its_template_and_warns_when_there_is_none()
    {
        // stories260k's tokenizer.json alone: no chat template beside it and no chat special tokens.
        var dir = _chat.File("stories");
        Directory.CreateDirectory(dir);
        var tokenizer = Path.Combine(dir, "tokenizer.json");
        File.Copy(Repo.Fixture("tokenizers", "hub", "stories260k", "tokenizer.json"), tokenizer);
        const string Warning = "safetune: warning: no chat template beside the tokenizer";

        var train = CliRunner.Run(Train("run-plain", tokenizer));
        Assert.True(train.ExitCode == 0, train.Stderr);
        Assert.Contains(Warning, train.Stderr);
        Assert.Equal("plain", JsonDocument.Parse(train.Stdout).RootElement.GetProperty("template").GetString());

        var kv = _chat.File("model-kv.onnx");
        _chat.Cached(extraRows: 600).Save(kv);
        string[] eval = ["eval", "--model", kv, "--tokenizer", tokenizer, "--harmful", _harmful, "--limit", "2", "--max-new-tokens", "2", "--no-loss"];
        var table = CliRunner.Run(eval);
        Assert.True(table.ExitCode == 0, table.Stderr);
        Assert.Contains(Warning, table.Stderr);
        Assert.Contains("chat template: plain (none beside the tokenizer)", table.Stdout);
        var named = CliRunner.Run([.. eval, "--template", "plain", "--json"]);
        Assert.True(named.ExitCode == 0, named.Stderr);
        Assert.DoesNotContain("warning", named.Stderr);
        Assert.Equal("plain", JsonDocument.Parse(named.Stdout).RootElement.GetProperty("template").GetString());

        var probe = CliRunner.Run("probe", "train", "--model", _model, "--tokenizer", tokenizer, "--harmful", _harmful, "--harmless", _harmless,
            "--out", _chat.File("stories-probe.json"));
        Assert.True(probe.ExitCode == 0, probe.Stderr);
        Assert.Contains(Warning, probe.Stderr);
        Assert.Contains("chat template: raw (none beside the tokenizer)", probe.Stdout);
    }
}
