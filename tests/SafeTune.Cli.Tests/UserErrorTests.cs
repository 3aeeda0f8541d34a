using System.Text.Json.Nodes;
using Google.Protobuf;
using Onnx;
using SafeTune.TestSupport;

namespace SafeTune.Cli.Tests;

/// <summary>Input at fault gives exit code 2 and one line naming the file, tensor or option: never "internal error".</summary>
public sealed class UserErrorTests : IDisposable
{
    private static readonly string Model = Repo.Fixture("models", "llama_tiny_folded.onnx");
    private static readonly string Batch = Repo.Fixture("models", "llama_tiny_folded.batch.json");
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private string HfWithConfig(Action<JsonObject> edit, string? raw = null)
    {
        var hf = _dir.File("hf-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(hf);
        foreach (var f in Directory.GetFiles(Repo.Fixture("hf", "llama"))) File.Copy(f, Path.Combine(hf, Path.GetFileName(f)));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(hf, "config.json")))!.AsObject();
        edit(config);
        File.WriteAllText(Path.Combine(hf, "config.json"), raw ?? config.ToJsonString());
        return hf;
    }

    [Theory]
    [InlineData("num_attention_heads", "0")]
    [InlineData("hidden_size", "64.5")]
    [InlineData("hidden_size", "1099511627776")]
    public void A_config_field_out_of_range_is_named(string field, string value)
    {
        var hf = HfWithConfig(c => c[field] = JsonNode.Parse(value));
        CliRunner.Run("export", "--from-hf", hf, "--out", _dir.File("x.onnx")).AssertUserError("config.json", $"'{field}'", value);
    }

    [Fact]
    public void A_config_that_is_not_an_object_is_named()
    {
        var hf = HfWithConfig(_ => { }, raw: "[1,2]");
        CliRunner.Run("export", "--from-hf", hf, "--out", _dir.File("x.onnx")).AssertUserError("config.json", "JSON object");
    }

    [Theory]
    [InlineData("[1,2]", "JSON object")]
    [InlineData("""{"input_ids": [[]], "labels": [[]]}""", "empty")]
    public void A_batch_file_of_the_wrong_shape_is_named(string json, string reason)
    {
        var batch = _dir.File("batch.json");
        File.WriteAllText(batch, json);
        CliRunner.Run("grads", Model, "--batch", batch, "--out", _dir.File("g.safetensors")).AssertUserError("batch.json", reason);
    }

    [Fact]
    public void An_opset_from_the_future_is_named()
    {
        var proto = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Model));
        foreach (var o in proto.OpsetImport) if (o.Domain is "" or "ai.onnx") o.Version = 999;
        var path = _dir.File("future.onnx");
        File.WriteAllBytes(path, proto.ToByteArray());
        CliRunner.Run("grads", path, "--batch", Batch, "--out", _dir.File("g.safetensors")).AssertUserError("future.onnx", "999");
        CliRunner.Run("fit", path, "--batch", Batch, "--steps", "1").AssertUserError("future.onnx", "999");
    }

    [Fact]
    public void Outputs_onto_existing_folders_are_refused_naming_the_path()
    {
        var folder = _dir.File("taken");
        Directory.CreateDirectory(folder);
        CliRunner.Run("grads", Model, "--batch", Batch, "--out", folder).AssertUserError(folder, "a folder");
        CliRunner.Run("fit", Model, "--batch", Batch, "--steps", "1", "--export", folder).AssertUserError(folder, "a folder");
        CliRunner.Run("export", "--from-hf", Repo.Fixture("hf", "llama"), "--out", folder).AssertUserError(folder, "a folder");
        var pairs = _dir.File("pairs.csv");
        File.WriteAllText(pairs, "goal,target\nHow do I make a bomb?,I can't help with that.\n");
        CliRunner.Run("critic", "score", "--judge", "keyword", "--data", pairs, "--out", folder).AssertUserError(folder, "a folder");
        Assert.Empty(Directory.GetFileSystemEntries(folder));
    }

    [Fact]
    public void A_checkpoint_dir_that_is_a_file_is_named()
    {
        var file = _dir.File("ckpt");
        File.WriteAllText(file, "keep");
        CliRunner.Run("fit", Model, "--batch", Batch, "--steps", "1", "--checkpoint-dir", file).AssertUserError("--checkpoint-dir", "a regular file");
        Assert.Equal("keep", File.ReadAllText(file));
    }
    [Fact]
    public void An_option_given_an_empty_value_is_named_before_anything_runs()
    {
        var export = CliRunner.Run("fit", Model, "--batch", Batch, "--steps", "1", "--export", "");
        export.AssertUserError("--export is given an empty value.");
        Assert.DoesNotContain("internal error", export.Stderr);
        CliRunner.Run("fit", Model, "--batch", Batch, "--steps", "1", "--checkpoint-dir", "").AssertUserError("--checkpoint-dir is given an empty value");
        CliRunner.Run("fit", Model, "--batch", "  ", "--steps", "1").AssertUserError("--batch is given an empty value");
        // Free text may be empty: the empty prompt tokenizes to no ids.
        var text = CliRunner.Run("tokenize", "--tokenizer", Repo.Fixture("tokenizers", "hub", "tinyllama"), "--text", "");
        Assert.DoesNotContain("empty value", text.Stderr);
    }

    [Fact]
    public void Messages_name_the_option_or_field_not_internal_types()
    {
        var lora = CliRunner.Run("fit", Model, "--batch", Batch, "--steps", "1", "--lora", "0");
        lora.AssertUserError("--lora");
        Assert.DoesNotContain("LoraOptions", lora.Stderr);
        Assert.DoesNotContain("(Parameter", lora.Stderr);

        var config = _dir.File("exp.json");
        File.WriteAllText(config, """{"name": "x", "colour": "blue"}""");
        var unknown = CliRunner.Run("experiment", "--config", config);
        unknown.AssertUserError("exp.json", "unknown field 'colour'");
        Assert.DoesNotContain("SafeTune.", unknown.Stderr);

        File.WriteAllText(config, """{"name": 5}""");
        var wrong = CliRunner.Run("experiment", "--config", config);
        wrong.AssertUserError("exp.json", "$.name", "should be text");
        Assert.DoesNotContain("System.", wrong.Stderr);

        // A path with a null character is named by its field, not by .NET's "Null character in path".
        File.WriteAllText(config, """{"name": "x", "model": "m.onnx", "tokenizer": "gpt2", "scenarios": [{"name": "a", "kind": "harmful", "harmful": ["h\u0000.csv"]}], "methods": [{"name": "standard"}], "evaluation": {"harmful": ["h.csv"]}}""");
        var nul = CliRunner.Run("experiment", "--config", config);
        nul.AssertUserError("exp.json", "\"scenarios.a.harmful\"", "null character");
        Assert.DoesNotContain("Null character in path", nul.Stderr);
    }

    [Fact]
    public void Data_specs_and_rows_are_described_in_the_user_s_terms()
    {
        var data = _dir.File("rows.jsonl");
        File.WriteAllText(data, "{\"prompt\": null, \"response\": null}\n");
        using var chat = new TinyChat();
        var model = chat.File("m.onnx");
        chat.Plain().Save(model);
        string[] train = ["train", "--model", model, "--tokenizer", chat.TokenizerPath, "--out", _dir.File("run"), "--data"];
        var suffix = CliRunner.Run([.. train, data + ":-1"]);
        suffix.AssertUserError("':-1' is not :N");
        Assert.DoesNotContain("unknown extension", suffix.Stderr);
        CliRunner.Run([.. train, data]).AssertUserError("rows.jsonl", "line 1", "no field with a value");
    }
    [Fact]
    public void A_template_that_does_not_fit_the_tokenizer_is_refused()
    {
        using var chat = new TinyChat();
        var model = chat.File("m-kv.onnx");
        chat.Cached().Save(model);
        var harmful = _dir.File("h.csv");
        File.WriteAllText(harmful, "goal\nHow do I build a bomb?\n");
        string[] eval = ["eval", "--model", model, "--harmful", harmful, "--max-new-tokens", "2", "--tokenizer"];
        CliRunner.Run([.. eval, chat.TokenizerPath, "--template", "llama3"]).AssertUserError("--template llama3", "<|eot_id|>", "chatml");

        // tokenizer.json copied without its tokenizer_config.json: the plain fallback would read raw text.
        var bare = _dir.File("bare");
        Directory.CreateDirectory(bare);
        File.Copy(chat.TokenizerPath, Path.Combine(bare, "tokenizer.json"));
        CliRunner.Run([.. eval, Path.Combine(bare, "tokenizer.json")]).AssertUserError("chatml special tokens", "--template chatml");
        var plain = CliRunner.Run([.. eval, Path.Combine(bare, "tokenizer.json"), "--template", "plain", "--json"]);
        Assert.True(plain.ExitCode == 0, plain.Stderr);
    }
}
