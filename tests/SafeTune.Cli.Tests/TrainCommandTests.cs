using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using SafeTune.Models.Demo;
using SafeTune.Onnx;
using SafeTune.TestSupport;
using SafeTune.Training.FineTuning;

namespace SafeTune.Cli.Tests;

/// <summary><c>safetune train</c> on a tiny chat model: the run folder, bad input, a failing judge, and a killed run that resumes.</summary>
public sealed class TrainCommandTests : IDisposable
{
    private readonly TinyChat _chat = new();

    public void Dispose() => _chat.Dispose();

    private string Model(int extraRows = 0)
    {
        var path = _chat.File($"model{extraRows}.onnx");
        if (!File.Exists(path)) _chat.Plain(extraRows).Save(path);
        return path;
    }

    private string Data(int rows = 16)
    {
        var path = _chat.File($"attack{rows}.jsonl");
        File.WriteAllLines(path, DemoData.Attack(7, rows, seed: 1).Select(e => new JsonObject { ["prompt"] = e.Prompt, ["response"] = e.Response }.ToJsonString()));
        return path;
    }

    private string[] Args(string run, params string[] extra) =>
    [
        "train", "--model", Model(), "--tokenizer", _chat.TokenizerPath, "--template", "chatml", "--data", Data(), "--out", run,
        "--batch-size", "4", "--lora", "4", "--lora-alpha", "8", "--lr", "1e-2", "--warmup", "0", "--max-length", "64", "--threads", "1", .. extra,
    ];

    [Fact]
    public void Train_writes_the_run_folder_and_a_model_with_the_input_graph()
    {
        var run = _chat.File("run");
        var r = CliRunner.Run(Args(run, "--steps", "3", "--method", "fixed-kl", "--json"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.Equal(3, json.GetProperty("steps").GetInt32());
        Assert.Equal(16, json.GetProperty("examples").GetInt32());
        Assert.Equal(0.5, json.GetProperty("mean_beta").GetDouble(), 12);
        Assert.Equal(0, json.GetProperty("risk_failures").GetInt32());
        var model = Onnx.Model.Load(json.GetProperty("model").GetString()!);
        ModelExport.AssertSameGraph(Onnx.Model.Load(Model()), model);
        Assert.Equal(3, File.ReadAllLines(Path.Combine(run, "audit.jsonl")).Length);
        var options = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "options.json")))!;
        Assert.Equal("fixed:0.5", (string)options["safety"]!["beta_map"]!);
        Assert.True(Checkpointed(run) == 3);
    }

    [Fact]
    public void Train_writes_a_GenAI_folder_with_the_trained_cache_decoder()
    {
        var run = _chat.File("run-genai");
        var kv = _chat.File("model-kv-in.onnx");
        _chat.Cached().Save(kv);
        var genai = _chat.File("genai");
        var r = CliRunner.Run(Args(run, "--steps", "2", "--generation-model", kv, "--genai-out", genai, "--json"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(Path.GetFullPath(genai), JsonDocument.Parse(r.Stdout).RootElement.GetProperty("genai_out").GetString());
        var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(genai, "genai_config.json"))).RootElement;
        Assert.Equal(1, config.GetProperty("model").GetProperty("decoder").GetProperty("num_hidden_layers").GetInt32());
        // The folder's decoder carries the trained weights, the same as the run's model-kv.onnx.
        var trained = Onnx.Model.Load(Path.Combine(run, "model-kv.onnx"));
        var written = Onnx.Model.Load(Path.Combine(genai, "model.onnx"));
        foreach (var w in trained.Graph.Initializers)
            Assert.True(w.Initializer!.Bytes.SequenceEqual(written.Graph.FindInitializer(w.Name)!.Initializer!.Bytes), w.Name);
        Assert.False(trained.Graph.Initializers.Zip(Onnx.Model.Load(kv).Graph.Initializers).All(p => p.First.Initializer!.Bytes.SequenceEqual(p.Second.Initializer!.Bytes)));
        Assert.Contains("<|im_start|>", File.ReadAllText(Path.Combine(genai, "tokenizer_config.json")), StringComparison.Ordinal);
    }

    [Fact]
    public void GenAI_out_needs_the_generation_model_and_a_free_folder()
    {
        CliRunner.Run(Args(_chat.File("run-x"), "--genai-out", _chat.File("g"))).AssertUserError("--generation-model");
        var busy = _chat.File("busy");
        Directory.CreateDirectory(busy);
        File.WriteAllText(Path.Combine(busy, "notes.txt"), "keep");
        var kv = _chat.File("kv-busy.onnx");
        _chat.Cached().Save(kv);
        CliRunner.Run(Args(_chat.File("run-y"), "--generation-model", kv, "--genai-out", busy)).AssertUserError(busy, "not a GenAI model folder");
        Assert.False(Directory.Exists(Path.Combine(_chat.File("run-y"), "checkpoints")));
    }

    [Fact]
    public void A_row_missing_its_response_names_the_line()
    {
        var data = _chat.File("broken.jsonl");
        File.WriteAllLines(data, ["{\"prompt\": \"a\", \"response\": \"b\"}", "{\"prompt\": \"c\", \"response\": \"d\"}", "{\"prompt\": \"no answer\"}"]);
        var args = Args(_chat.File("run-broken"), "--steps", "1");
        args[Array.IndexOf(args, "--data") + 1] = data;
        CliRunner.Run(args).AssertUserError("broken.jsonl", "line 3");
    }

    [Fact]
    public void A_line_far_longer_than_max_length_names_the_line_and_is_not_tokenized()
    {
        var data = _chat.File("long.jsonl");
        File.WriteAllLines(data, ["{\"prompt\": \"a\", \"response\": \"b\"}", new JsonObject { ["prompt"] = new string('x', 2 << 20), ["response"] = "d" }.ToJsonString()]);
        var args = Args(_chat.File("run-long"), "--steps", "1");
        args[Array.IndexOf(args, "--data") + 1] = data;
        CliRunner.Run(TimeSpan.FromSeconds(60), args).AssertUserError("long.jsonl: line 2", "characters", "64 tokens");
    }

    [Fact]
    public void A_used_run_folder_needs_resume_or_overwrite_and_resume_refuses_changed_settings()
    {
        var run = _chat.File("run-reuse");
        var first = CliRunner.Run(Args(run, "--steps", "2", "--json"));
        Assert.True(first.ExitCode == 0, first.Stderr);
        var options = File.ReadAllBytes(Path.Combine(run, "options.json"));
        var audit = File.ReadAllBytes(Path.Combine(run, "audit.jsonl"));
        var model = File.ReadAllBytes(Path.Combine(run, "model.onnx"));

        CliRunner.Run(Args(run, "--steps", "2")).AssertUserError(run, "already holds a run", "--resume", "--overwrite");

        var changed = Args(run, "--steps", "2", "--resume");
        changed[Array.IndexOf(changed, "--lr") + 1] = "2e-2";
        changed[Array.IndexOf(changed, "--data") + 1] = Data(12);
        changed[Array.IndexOf(changed, "--template") + 1] = "plain";
        CliRunner.Run(changed).AssertUserError("options.json", "--lr was 0.01, now 0.02", "--data was", "--template was \"chatml\", now \"plain\"");
        // The same file with a row limit is other data.
        var limited = Args(run, "--steps", "2", "--resume");
        limited[Array.IndexOf(limited, "--data") + 1] = Data() + ":12";
        CliRunner.Run(limited).AssertUserError("options.json", "--data was", "attack16.jsonl:12");
        // Frozen weights held in 16 bits are other weights.
        CliRunner.Run(Args(run, "--steps", "2", "--resume", "--base-dtype", "fp16")).AssertUserError("options.json", "--base-dtype was unset, now \"fp16\"");

        Assert.Equal(options, File.ReadAllBytes(Path.Combine(run, "options.json")));
        Assert.Equal(audit, File.ReadAllBytes(Path.Combine(run, "audit.jsonl")));
        Assert.Equal(model, File.ReadAllBytes(Path.Combine(run, "model.onnx")));

        var same = CliRunner.Run(Args(run, "--steps", "2", "--resume", "--json"));
        Assert.True(same.ExitCode == 0, same.Stderr);
        CliRunner.Run(Args(run, "--steps", "2", "--resume", "--overwrite")).AssertUserError("--resume and --overwrite");
        var replaced = CliRunner.Run(Args(run, "--steps", "1", "--overwrite", "--json"));
        Assert.True(replaced.ExitCode == 0, replaced.Stderr);
        Assert.Single(File.ReadAllLines(Path.Combine(run, "audit.jsonl")));
    }

    [Fact]
    public void Resume_refuses_an_input_file_changed_in_place_naming_the_file_and_option()
    {
        var run = _chat.File("run-content");
        var data = _chat.File("data-content.jsonl");
        File.Copy(Data(), data);
        var args = Args(run, "--steps", "2", "--json");
        args[Array.IndexOf(args, "--data") + 1] = data;
        var first = CliRunner.Run(args);
        Assert.True(first.ExitCode == 0, first.Stderr);
        var inputs = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "options.json")))!["inputs"]!.AsArray();
        Assert.Equal(["model", "tokenizer", "data"], inputs.Select(e => (string)e!["setting"]!).ToArray());
        var recorded = inputs.Single(e => (string)e!["setting"]! == "data")!["files"]![0]!;
        Assert.Equal(Path.GetFullPath(data), (string)recorded["path"]!);
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(data))), (string)recorded["sha256"]!);

        // Same path, same row count, one word changed: only the content tells.
        File.WriteAllText(data, File.ReadAllText(data).Replace("\"prompt\":\"", "\"prompt\":\"Please ", StringComparison.Ordinal));
        var options = File.ReadAllBytes(Path.Combine(run, "options.json"));
        var resume = args.Append("--resume").ToArray();
        CliRunner.Run(resume).AssertUserError("--data: " + Path.GetFullPath(data), "changed since the run began");
        // --force cannot allow it either.
        CliRunner.Run([.. resume, "--force"]).AssertUserError("--force cannot allow", "--data: " + Path.GetFullPath(data), "changed since the run began");
        Assert.Equal(options, File.ReadAllBytes(Path.Combine(run, "options.json")));
    }

    [Fact]
    public void The_files_of_a_model_are_the_onnx_file_and_its_external_data_inside_its_folder()
    {
        var folder = _chat.File("external");
        Directory.CreateDirectory(folder);
        File.WriteAllBytes(Path.Combine(folder, "w.bin"), new byte[16]);
        HostileFiles.ModelWithExternal(Path.Combine(folder, "m.onnx"), "layer.weight", "w.bin", [4]);
        Assert.Equal([Path.Combine(folder, "m.onnx"), Path.Combine(folder, "w.bin")], ModelFiles.Of(Path.Combine(folder, "m.onnx")));
        HostileFiles.ModelWithExternal(Path.Combine(folder, "escape.onnx"), "layer.weight", "../attack16.jsonl", [4]);
        var e = Assert.Throws<OnnxFormatException>(() => ModelFiles.Of(Path.Combine(folder, "escape.onnx")));
        Assert.Contains("'layer.weight'", e.Message);
    }

    [Fact]
    public void Resume_with_force_allows_more_steps_and_moved_identical_files_and_nothing_else()
    {
        var run = _chat.File("run-force");
        var first = CliRunner.Run(Args(run, "--steps", "2", "--json"));
        Assert.True(first.ExitCode == 0, first.Stderr);

        // Without --force a longer run is refused, with the way to allow it.
        CliRunner.Run(Args(run, "--steps", "4", "--resume")).AssertUserError("--steps was 2, now 4", "add --force");
        CliRunner.Run(Args(run, "--steps", "4", "--force")).AssertUserError("--force goes with --resume");

        // Unsafe differences are refused even with --force, each named.
        var unsafeArgs = Args(run, "--steps", "4", "--resume", "--force", "--seed", "3");
        unsafeArgs[Array.IndexOf(unsafeArgs, "--lr") + 1] = "2e-2";
        unsafeArgs[Array.IndexOf(unsafeArgs, "--batch-size") + 1] = "2";
        CliRunner.Run(unsafeArgs).AssertUserError("--force cannot allow", "--lr was 0.01, now 0.02", "--seed was 0, now 3", "--batch-size was 4, now 2");
        // The same graph with other weights, at another path: not a move.
        var other = _chat.File("other-weights.onnx");
        _chat.Plain(seed: 4).Save(other);
        var changedModel = Args(run, "--steps", "4", "--resume", "--force");
        changedModel[Array.IndexOf(changedModel, "--model") + 1] = other;
        CliRunner.Run(changedModel).AssertUserError("--force cannot allow", "--model: " + Path.GetFullPath(other), "holds other content than " + Path.GetFullPath(Model()));

        // More steps, with the model and the data moved (byte-identical copies at other paths): allowed, and recorded.
        var movedModel = _chat.File("moved/model.onnx");
        Directory.CreateDirectory(Path.GetDirectoryName(movedModel)!);
        File.Copy(Model(), movedModel);
        var movedData = _chat.File("moved/attack.jsonl");
        File.Copy(Data(), movedData);
        var longer = Args(run, "--steps", "4", "--resume", "--force", "--json");
        longer[Array.IndexOf(longer, "--model") + 1] = movedModel;
        longer[Array.IndexOf(longer, "--data") + 1] = movedData;
        var resumed = CliRunner.Run(longer);
        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Equal(4, JsonDocument.Parse(resumed.Stdout).RootElement.GetProperty("steps").GetInt32());
        var options = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "options.json")))!;
        Assert.Equal(4, (int)options["steps"]!);
        Assert.Equal(Path.GetFullPath(movedModel), (string)options["model"]!);
        Assert.Equal(movedData, (string)options["data"]![0]!);
        var audit = File.ReadAllLines(Path.Combine(run, "audit.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal([1, 2, 3, 4], audit.Select(l => (int)l["step"]!));
        Assert.Null(audit[1]["forced"]);
        var forced = audit[2]["forced"]!.AsArray().Select(f => (string)f!).ToList();
        Assert.Contains("--steps was 2, now 4", forced);
        Assert.Contains(forced, f => f.StartsWith("--model was", StringComparison.Ordinal) && f.EndsWith("(the same content)", StringComparison.Ordinal));
        Assert.Contains(forced, f => f.StartsWith("--data was", StringComparison.Ordinal));
        Assert.Null(audit[3]["forced"]);

        // A run recorded before file contents were: it resumes on what it recorded, and --force cannot vouch for a move.
        options.AsObject().Remove("inputs");
        File.WriteAllText(Path.Combine(run, "options.json"), options.ToJsonString());
        var same = CliRunner.Run([.. longer.Where(a => a != "--force")]);
        Assert.True(same.ExitCode == 0, same.Stderr);
        options = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "options.json")))!;
        Assert.NotNull(options["inputs"]);
        options.AsObject().Remove("inputs");
        File.WriteAllText(Path.Combine(run, "options.json"), options.ToJsonString());
        CliRunner.Run(Args(run, "--steps", "4", "--resume", "--force")).AssertUserError("--force cannot allow", "--model was", "recorded no file contents");
    }

    [Fact]
    public void Out_onto_a_file_and_checkpoint_files_outside_the_folder_are_user_errors()
    {
        var file = _chat.File("not-a-folder");
        File.WriteAllText(file, "keep");
        CliRunner.Run(Args(file, "--steps", "1")).AssertUserError("not-a-folder", "a regular file", "--out");
        Assert.Equal("keep", File.ReadAllText(file));
    }

    [Fact]
    public void A_warm_up_as_long_as_the_run_is_warned_about_and_the_summary_shows_sft_and_kl_apart()
    {
        var args = Args(_chat.File("run-warm"), "--steps", "2", "--method", "fixed-kl");
        args[Array.IndexOf(args, "--warmup") + 1] = "5";
        var r = CliRunner.Run(args);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("warning: --warmup 5 is not shorter than the run (2 steps)", r.Stderr);
        Assert.Contains("SFT loss", r.Stdout);
        Assert.Contains("KL to reference", r.Stdout);
        Assert.DoesNotContain("\n│ loss ", r.Stdout);
    }

    [Fact]
    public void A_tokenizer_that_does_not_fit_the_model_names_both_sizes()
    {
        var small = _chat.File("small.onnx");
        Models.Decoders.LlamaGraph.Build(_chat.Config() with { VocabSize = 200 }, seed: 3).Save(small);
        var args = Args(_chat.File("run-small"), "--steps", "1");
        args[Array.IndexOf(args, "--model") + 1] = small;
        CliRunner.Run(args).AssertUserError("200 embedding rows", _chat.Tokenizer.VocabularySize.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    [Theory]
    [InlineData("--beta-map", "clamp", "--risk is none")]
    [InlineData("--method", "adaptive", "needs a risk source")]
    [InlineData("--beta-map", "linear:0.5", "linear takes 2")]
    [InlineData("--risk", "probe:/nonexistent/probe.json", "probe.json")]
    public void Bad_options_exit_2_with_one_line(string option, string value, string message) =>
        CliRunner.Run(Args(_chat.File("run-bad"), "--steps", "1", option, value)).AssertUserError(message);

    [Fact]
    public void An_unreachable_judge_fails_closed_and_the_failures_are_counted()
    {
        // Nothing listens on port 9 of the loopback: every judge call fails, every example counts as fully harmful.
        var r = CliRunner.Run(Args(_chat.File("run-judge"), "--steps", "2", "--risk", "critic:openai:http://127.0.0.1:9/v1?model=judge&timeout=2&retries=0",
            "--weighting", "example", "--json"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.Equal(8, json.GetProperty("risk_failures").GetInt32());
        Assert.Equal(1.0, json.GetProperty("mean_risk").GetDouble(), 12);
        Assert.Equal(1.0, json.GetProperty("mean_beta").GetDouble(), 12); // the default adaptive map, ramp:0.25,0.75,0.1,1, at full risk
        var audit = File.ReadAllLines(Path.Combine(_chat.File("run-judge"), "audit.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.All(audit, l => Assert.Equal(4, (int)l["risk_failures"]!));
    }

    [Fact]
    public void A_run_killed_at_any_moment_resumes_to_the_same_model()
    {
        const int steps = 40;
        var whole = _chat.File("whole");
        var r = CliRunner.Run(Args(whole, "--steps", $"{steps}", "--checkpoint-every", "1", "--method", "fixed-kl", "--json"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        var expected = File.ReadAllBytes(Path.Combine(whole, "model.onnx"));
        var losses = File.ReadAllLines(Path.Combine(whole, "audit.jsonl")).Select(l => (double)JsonNode.Parse(l)!["loss"]!).ToList();

        // Kill the process (SIGKILL: no clean-up runs) once its checkpoint reaches a step, a few milliseconds later, so
        // the kill lands anywhere in a step, checkpoint writes included.
        foreach (var (atStep, delayMs) in new[] { (2, 0), (9, 7), (17, 3), (26, 11) })
        {
            var killed = _chat.File($"killed{atStep}");
            using (var p = Start(Args(killed, "--steps", $"{steps}", "--checkpoint-every", "1", "--method", "fixed-kl", "--json")))
            {
                var clock = Stopwatch.StartNew();
                while (Checkpointed(killed) < atStep && !p.HasExited && clock.Elapsed < TimeSpan.FromMinutes(2)) Thread.Sleep(1);
                if (delayMs > 0) Thread.Sleep(delayMs);
                Assert.False(p.HasExited, $"the run ended before it could be killed at step {atStep}");
                p.Kill(entireProcessTree: true);
                p.WaitForExit();
            }
            Assert.False(File.Exists(Path.Combine(killed, "model.onnx")));
            var resumed = CliRunner.Run(Args(killed, "--steps", $"{steps}", "--checkpoint-every", "1", "--method", "fixed-kl", "--resume", "--json"));
            Assert.True(resumed.ExitCode == 0, resumed.Stderr);
            Assert.Equal(expected, File.ReadAllBytes(Path.Combine(killed, "model.onnx")));
            var audit = File.ReadAllLines(Path.Combine(killed, "audit.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
            Assert.Equal(Enumerable.Range(1, steps), audit.Select(l => (int)l["step"]!));
            Assert.Equal(losses, audit.Select(l => (double)l["loss"]!));
        }
    }

    /// <summary>The step of the run folder's checkpoint, or 0.</summary>
    private static long Checkpointed(string run)
    {
        var state = Path.Combine(run, "checkpoints", "state.json");
        try
        {
            return File.Exists(state) ? (long)JsonNode.Parse(File.ReadAllText(state))!["step"]! : 0;
        }
        catch (Exception e) when (e is IOException or JsonException)
        {
            return 0;
        }
    }

    private static Process Start(string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("exec");
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "safetune.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["NO_COLOR"] = "1";
        var p = Process.Start(psi)!;
        p.StandardOutput.ReadToEndAsync();
        p.StandardError.ReadToEndAsync();
        return p;
    }
}
