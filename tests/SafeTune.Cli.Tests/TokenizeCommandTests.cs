using System.Text.Json;
using SafeTune.TestSupport;

namespace SafeTune.Cli.Tests;

public sealed class TokenizeCommandTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static string Hub(string family) => Repo.Fixture("tokenizers", "hub", family);

    [Fact]
    public void Text_gives_the_ids_and_tokens_transformers_js_gives()
    {
        using var expected = JsonDocument.Parse(File.ReadAllText(Path.Combine(Hub("tinyllama"), "expected.json")));
        var row = expected.RootElement.GetProperty("rows").EnumerateArray().First(r => r.GetProperty("text").GetString() == "Hello, world!");
        var r = CliRunner.Run("tokenize", "--tokenizer", Hub("tinyllama"), "--text", "Hello, world!", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.Equal(row.GetProperty("ids").GetRawText(), JsonSerializer.Serialize(json.GetProperty("ids")));
        Assert.Equal("<s>", json.GetProperty("tokens")[0].GetString());

        var plain = CliRunner.Run("tokenize", "--tokenizer", Hub("tinyllama"), "--text", "Hello, world!", "--no-special", "--json");
        Assert.Equal(row.GetProperty("ids_no_special").GetRawText(), JsonSerializer.Serialize(JsonDocument.Parse(plain.Stdout).RootElement.GetProperty("ids")));
    }

    [Fact]
    public void Input_rows_of_text_and_messages_come_out_in_order()
    {
        using var expected = JsonDocument.Parse(File.ReadAllText(Path.Combine(Hub("tinyllama"), "expected.json")));
        var chat = expected.RootElement.GetProperty("chats")[0];
        var input = _dir.File("in.jsonl");
        File.WriteAllLines(input,
        [
            "{\"text\": \"Once upon a time\"}",
            $"{{\"messages\": {chat.GetProperty("messages").GetRawText()}, \"add_generation_prompt\": true}}",
            "",
            "{\"text\": \"\"}",
        ]);
        var output = _dir.File("out.jsonl");
        var r = CliRunner.Run("tokenize", "--tokenizer", Hub("tinyllama"), "--input", input, "--out", output, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(3, JsonDocument.Parse(r.Stdout).RootElement.GetProperty("rows").GetInt32());
        var rows = File.ReadAllLines(output).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(3, rows.Count);
        Assert.Equal(1, rows[0].GetProperty("ids")[0].GetInt32());
        Assert.False(rows[0].TryGetProperty("text", out _));
        // A conversation: the model's own template renders it and apply_chat_template's ids follow.
        Assert.Equal(chat.GetProperty("prompt_ids").GetRawText(), JsonSerializer.Serialize(rows[1].GetProperty("ids")));
        Assert.Equal("<|user|>\nHello, how are you?</s>\n<|assistant|>\n", rows[1].GetProperty("text").GetString());
        Assert.Equal(rows[1].GetProperty("ids").GetArrayLength(), rows[1].GetProperty("tokens").GetArrayLength());
        Assert.Equal("[1]", JsonSerializer.Serialize(rows[2].GetProperty("ids")));
    }

    [Fact]
    public void A_folder_with_only_tokenizer_config_renders_without_ids()
    {
        var model = Directory.CreateDirectory(_dir.File("config-only")).FullName;
        File.Copy(Path.Combine(Hub("tinyllama"), "tokenizer_config.json"), Path.Combine(model, "tokenizer_config.json"));
        var input = _dir.File("in.jsonl");
        File.WriteAllText(input, "{\"messages\": [{\"role\": \"system\", \"content\": \"Be kind.\"}, {\"role\": \"user\", \"content\": \"Hi\"}], \"add_generation_prompt\": false}\n");
        var output = _dir.File("out.jsonl");
        var r = CliRunner.Run("tokenize", "--tokenizer", model, "--input", input, "--out", output);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var row = JsonDocument.Parse(File.ReadAllText(output)).RootElement;
        Assert.Equal("<|system|>\nBe kind.</s>\n<|user|>\nHi</s>\n", row.GetProperty("text").GetString());
        Assert.False(row.TryGetProperty("ids", out _));
    }

    [Fact]
    public void An_unreadable_tokenizer_json_is_named()
    {
        var model = Directory.CreateDirectory(_dir.File("broken")).FullName;
        File.WriteAllText(Path.Combine(model, "tokenizer.json"), "{ \"model\": ");
        CliRunner.Run("tokenize", "--tokenizer", model, "--text", "x").AssertUserError("tokenizer.json", "not valid JSON");
    }

    [Theory]
    [InlineData("pre_tokenizer", "{\"type\": \"Frobnicate\"}", "pre_tokenizer: unknown pre-tokenizer type 'Frobnicate'")]
    [InlineData("normalizer", "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Shout\"}]}", "normalizer.normalizers[0]: unknown normalizer type 'Shout'")]
    [InlineData("decoder", "{\"type\": \"Mystery\"}", "decoder: unknown decoder type 'Mystery'")]
    public void An_unknown_component_type_is_named_with_its_part(string section, string value, string fragment)
    {
        var model = Directory.CreateDirectory(_dir.File(section)).FullName;
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(Hub("stories260k"), "tokenizer.json")))!;
        json[section] = System.Text.Json.Nodes.JsonNode.Parse(value);
        File.WriteAllText(Path.Combine(model, "tokenizer.json"), json.ToJsonString());
        CliRunner.Run("tokenize", "--tokenizer", model, "--text", "x").AssertUserError(Path.Combine(model, "tokenizer.json"), fragment);
    }

    [Fact]
    public void A_template_that_raises_is_named_with_the_file_line_and_message()
    {
        var model = Directory.CreateDirectory(_dir.File("gemma")).FullName;
        File.Copy(Repo.Fixture("chat_templates", "templates", "gemma-2-2b-it.jinja"), Path.Combine(model, "chat_template.jinja"));
        var input = _dir.File("in.jsonl");
        File.WriteAllText(input, "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}\n{\"messages\": [{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": \"Hi\"}]}\n");
        CliRunner.Run("tokenize", "--tokenizer", model, "--input", input, "--out", _dir.File("out.jsonl"))
            .AssertUserError("in.jsonl' line 2", "chat_template.jinja' line 1", "the template raised: System role not supported");
        Assert.False(File.Exists(_dir.File("out.jsonl")));
    }

    [Fact]
    public void A_template_with_an_unsupported_feature_is_named_with_the_feature_and_line()
    {
        var model = Directory.CreateDirectory(_dir.File("macro")).FullName;
        File.WriteAllText(Path.Combine(model, "chat_template.jinja"), "{{ bos_token }}\n{% macro render(m) %}{{ m.content }}{% endmacro %}\n");
        var input = _dir.File("in.jsonl");
        File.WriteAllText(input, "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}\n");
        CliRunner.Run("tokenize", "--tokenizer", model, "--input", input, "--out", _dir.File("out.jsonl"))
            .AssertUserError("chat_template.jinja' line 2", "unsupported Jinja feature: the 'macro' statement");
    }

    [Theory]
    [InlineData(new[] { "tokenize", "--text", "x" }, "--tokenizer is required")]
    [InlineData(new[] { "tokenize", "--tokenizer", ".", "--text", "x", "--input", "a.jsonl" }, "exactly one of --text and --input")]
    [InlineData(new[] { "tokenize", "--tokenizer", ".", "--input", "a.jsonl" }, "--input needs --out")]
    public void Bad_options_are_named(string[] args, string fragment)
    {
        CliRunner.Run(args).AssertUserError(fragment);
    }

    [Fact]
    public void A_bad_row_is_named_with_its_file_and_line()
    {
        var input = _dir.File("in.jsonl");
        File.WriteAllText(input, "{\"text\": \"fine\"}\n{\"prompt\": \"no text here\"}\n");
        CliRunner.Run("tokenize", "--tokenizer", Hub("gpt2"), "--input", input, "--out", _dir.File("out.jsonl"))
            .AssertUserError("in.jsonl' line 2", "needs \"text\" or \"messages\"");
    }
}
