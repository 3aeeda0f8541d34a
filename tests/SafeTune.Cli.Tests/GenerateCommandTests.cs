using System.Text.Json;
using SafeTune.Data.Public;
using SafeTune.TestSupport;

namespace SafeTune.Cli.Tests;

public sealed class GenerateCommandTests : IDisposable
{
    /// <summary>The first 60 tokens of llama2.c's greedy continuation of "Once upon a time" by stories260K (its run.c).</summary>
    private const string Llama2cContinuation =
        ", there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.\nLily";

    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static readonly Lazy<string> StoriesFolder = new(() =>
    {
        using var store = new PublicDataStore(new PublicDataStoreOptions
        {
            CacheDirectory = Repo.TestCache("models"), Mirror = Repo.SharedModels(), MirrorVariable = PublicDataStore.ModelMirrorVariable,
        });
        return PublicModels.Resolve(PublicModels.Find("stories260k"), store);
    });

    /// <summary>stories260k's Hub folder, found and checked through the model registry.</summary>
    private static string Stories => StoriesFolder.Value;

    private string Export()
    {
        var model = _dir.File("stories260k.onnx");
        var r = CliRunner.Run("export", "--from-hf", Stories, "--out", model);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return model;
    }

    [Fact]
    public void Stories260k_exported_from_the_hub_folder_continues_as_llama2c_does()
    {
        var model = Export();
        var r = CliRunner.Run("generate", "--model", model, "--tokenizer", Stories, "--prompt", "Once upon a time", "--max-new-tokens", "60", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.Equal(Llama2cContinuation, json.GetProperty("text").GetString());
        Assert.Equal(60, json.GetProperty("ids").GetArrayLength());
        // bos, as tokenizer_config.json's add_bos_token says, then the prompt.
        Assert.Equal(5, json.GetProperty("prompt_tokens").GetInt32());
        Assert.True(json.GetProperty("tokens_per_second").GetDouble() > 0);

        // Without --json the text streams to stdout and the figures go to stderr.
        var streamed = CliRunner.Run("generate", "--model", model, "--tokenizer", Stories, "--prompt", "Once upon a time", "--max-new-tokens", "60");
        Assert.True(streamed.ExitCode == 0, streamed.Stderr);
        Assert.Equal(Llama2cContinuation + "\n", streamed.Stdout.Replace("\r\n", "\n", StringComparison.Ordinal));
        Assert.Contains("60 tokens after a 5-token prompt", streamed.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void A_hub_folder_as_model_is_built_with_a_key_value_cache_and_continues_alike()
    {
        var r = CliRunner.Run("generate", "--model", Stories, "--tokenizer", Stories, "--prompt", "Once upon a time", "--max-new-tokens", "60", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.True(json.GetProperty("kv_cache").GetBoolean());
        Assert.Equal(Llama2cContinuation, json.GetProperty("text").GetString());
    }

    [Fact]
    public void Chat_renders_each_turn_with_the_models_template_and_streams_the_replies()
    {
        // stories260k's folder with a chat template added: bos, then the turns, each reply closed by eos.
        var folder = Directory.CreateDirectory(_dir.File("chat-model")).FullName;
        foreach (var f in Directory.GetFiles(Stories)) File.Copy(f, Path.Combine(folder, Path.GetFileName(f)));
        File.WriteAllText(Path.Combine(folder, "chat_template.jinja"),
            "{{ bos_token }}{% for m in messages %}{% if m.role == 'assistant' %}{{ m.content + eos_token }}{% else %}{{ m.content }}{% endif %}{% endfor %}");
        var r = CliRunner.RunWithInput("Once upon a time\nThe dog\n", "chat", "--model", folder, "--tokenizer", folder, "--max-new-tokens", "20");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var replies = r.Stdout.Replace("\r\n", "\n", StringComparison.Ordinal).Split("> ", StringSplitOptions.RemoveEmptyEntries)
            .Select(x => x.TrimEnd('\n')).ToList();
        Assert.Equal(2, replies.Count);
        // The first turn is the base model's greedy continuation of the same text.
        Assert.StartsWith(replies[0], Llama2cContinuation, StringComparison.Ordinal);
        Assert.NotEmpty(replies[1]);
        Assert.Contains("2 turns", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Walkthrough_fetch_export_tokenize_generate_train_and_generate_again()
    {
        // README, "Bring your own Hub model": the public model by name from the model mirror, a small chat template added.
        var fetched = CliRunner.Run(TimeSpan.FromMinutes(2), new Dictionary<string, string>
        {
            [PublicDataStore.ModelMirrorVariable] = Repo.SharedModels(), ["SAFETUNE_CACHE"] = _dir.File("cache"),
        }, "data", "fetch", "stories260k", "--json");
        Assert.True(fetched.ExitCode == 0, fetched.Stderr);
        var source = JsonDocument.Parse(fetched.Stdout).RootElement.GetProperty("models")[0].GetProperty("path").GetString()!;
        Assert.Equal(Path.GetFullPath(Repo.SharedModels("stories260k")), Path.GetFullPath(source));
        var folder = Directory.CreateDirectory(_dir.File("my-model")).FullName;
        foreach (var f in Directory.GetFiles(source)) File.Copy(f, Path.Combine(folder, Path.GetFileName(f)));
        File.WriteAllText(Path.Combine(folder, "chat_template.jinja"),
            "{{ bos_token }}{% for m in messages %}{% if m.role == 'assistant' %}{{ m.content + eos_token }}{% else %}{{ m.content }}{% endif %}{% endfor %}");
        var model = _dir.File("my-model.onnx");
        Assert.Equal(0, CliRunner.Run("export", "--from-hf", folder, "--out", model).ExitCode);

        (string Prompt, string Response)[] stories =
        [
            ("Once upon a time", ", there was a cat named Tom. Tom liked to sleep in the sun all day."),
            ("The dog", " ran to the park. He found a red ball and played with it all day."),
            ("Tom the cat", " was very sleepy. He slept in the sun and dreamed of fish."),
            ("One day, Lily", " went to the sea. She saw a big fish and said hello."),
        ];
        var data = _dir.File("stories.jsonl");
        File.WriteAllLines(data, stories.Select(x => JsonSerializer.Serialize(new
        {
            messages = new[] { new { role = "user", content = x.Prompt }, new { role = "assistant", content = x.Response } },
        })));
        var tokenized = CliRunner.Run("tokenize", "--tokenizer", folder, "--input", data, "--out", _dir.File("stories.ids.jsonl"));
        Assert.True(tokenized.ExitCode == 0, tokenized.Stderr);
        var first = JsonDocument.Parse(File.ReadLines(_dir.File("stories.ids.jsonl")).First()).RootElement;
        Assert.Equal("<s>Once upon a time, there was a cat named Tom. Tom liked to sleep in the sun all day.</s>", first.GetProperty("text").GetString());
        Assert.Equal(33, first.GetProperty("ids").GetArrayLength());

        var ask = _dir.File("ask.json");
        File.WriteAllText(ask, "[{\"role\": \"user\", \"content\": \"Once upon a time\"}]");
        string Generate(string m)
        {
            var r = CliRunner.Run("generate", "--model", m, "--tokenizer", folder, "--messages", ask, "--max-new-tokens", "40", "--json");
            Assert.True(r.ExitCode == 0, r.Stderr);
            return JsonDocument.Parse(r.Stdout).RootElement.GetProperty("text").GetString()!;
        }
        // Before: the base model's own story (the template renders bos + the user's text).
        Assert.StartsWith(Generate(model), Llama2cContinuation, StringComparison.Ordinal);

        var run = _dir.File("run");
        var trained = CliRunner.Run("train", "--model", model, "--tokenizer", folder, "--data", data, "--out", run, "--full", "--lr", "3e-3",
            "--steps", "30", "--batch-size", "4", "--warmup", "0", "--threads", "1", "--json");
        Assert.True(trained.ExitCode == 0, trained.Stderr);
        var json = JsonDocument.Parse(trained.Stdout).RootElement;
        Assert.Equal(30, json.GetProperty("steps").GetInt32());
        Assert.EndsWith("chat_template.jinja", json.GetProperty("template").GetString(), StringComparison.Ordinal);
        Assert.True(json.GetProperty("last_loss").GetDouble() < json.GetProperty("first_loss").GetDouble() / 10, trained.Stdout);
        // After: the story it was trained on, closed by eos.
        Assert.Equal(stories[0].Response.TrimStart(), Generate(Path.Combine(run, "model.onnx")).TrimStart());
    }

    [Fact]
    public void Chat_needs_a_chat_template()
    {
        CliRunner.RunWithInput("Hi\n", "chat", "--model", Stories, "--tokenizer", Stories).AssertUserError("stories260k", "no chat template");
    }

    [Fact]
    public void Stories260k_loss_on_real_text_matches_pytorch()
    {
        // tests/fixtures/make_stories260k_loss.py: the Hub folder's weights in a float64 PyTorch Llama, on two stories
        // tokenized by transformers.js.
        var model = Export();
        var r = CliRunner.Run("grads", model, "--batch", Repo.Fixture("models", "stories260k.batch.json"), "--out", _dir.File("g.safetensors"), "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var loss = JsonDocument.Parse(r.Stdout).RootElement.GetProperty("loss").GetDouble();
        var torch = JsonDocument.Parse(File.ReadAllText(Repo.Fixture("models", "stories260k.loss.json"))).RootElement.GetProperty("loss").GetDouble();
        Assert.True(Math.Abs(loss - torch) <= 1e-4 * torch, $"loss {loss} vs PyTorch {torch}");
    }

    [Fact]
    public void Sampling_is_reproducible_with_a_seed()
    {
        var model = Export();
        string Run(string seed) => JsonDocument.Parse(CliRunner.Run("generate", "--model", model, "--tokenizer", Stories, "--prompt", "The cat",
            "--max-new-tokens", "20", "--temperature", "1", "--top-p", "0.9", "--seed", seed, "--json").Stdout).RootElement.GetProperty("text").GetString()!;
        Assert.Equal(Run("7"), Run("7"));
    }

    [Fact]
    public void Messages_need_a_chat_template()
    {
        var messages = _dir.File("chat.json");
        File.WriteAllText(messages, "[{\"role\": \"user\", \"content\": \"Hi\"}]");
        CliRunner.Run("generate", "--model", Export(), "--tokenizer", Stories, "--messages", messages).AssertUserError("stories260k", "no chat template");
    }

    [Theory]
    [InlineData(new[] { "generate", "--model", "m.onnx", "--tokenizer", "t" }, "exactly one of --prompt and --messages")]
    [InlineData(new[] { "generate", "--model", "m.onnx", "--tokenizer", "t", "--prompt", "x", "--top-p", "0" }, "--top-p must be in (0, 1]")]
    [InlineData(new[] { "generate", "--tokenizer", "t", "--prompt", "x" }, "--model is required")]
    public void Bad_options_are_named(string[] args, string fragment)
    {
        CliRunner.Run(args).AssertUserError(fragment);
    }
}
