using System.Net;
using System.Text;
using System.Text.Json;
using SafeTune.TestSupport;
using Xunit.Abstractions;

namespace SafeTune.Cli.Tests;

/// <summary>Prompts past the model's context: HTTP 400 naming the limit, and no memory kept after them.</summary>
public sealed class ServePromptLimitTests(ITestOutputHelper output) : IDisposable
{
    private readonly TinyChat _chat = new();

    public void Dispose() => _chat.Dispose();

    private ServeProcess Serve(params string[] extra)
    {
        var model = _chat.File("chat-kv.onnx");
        if (!File.Exists(model)) _chat.Cached().Save(model);
        return CliProcess.Serve(["--model", model, "--tokenizer", _chat.TokenizerPath, "--template", "chatml", .. extra]);
    }

    private static async Task<(HttpStatusCode Status, string Body)> Ask(HttpClient http, ServeProcess serve, string content)
    {
        var body = JsonSerializer.Serialize(new { messages = new[] { new { role = "user", content } }, max_tokens = 4, temperature = 0 });
        using var response = await http.PostAsync(new Uri(serve.BaseUrl + "/chat/completions"), new StringContent(body, Encoding.UTF8, "application/json"));
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Twenty_prompts_past_the_context_get_400_and_leave_the_memory_where_it_was()
    {
        using var serve = Serve();
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(2) };
        var ok = await Ask(http, serve, "What is 2 plus 3?");
        Assert.True(ok.Status == HttpStatusCode.OK, ok.Body);
        double before = serve.ResidentMegabytes();

        // About 9,000 words, each at least one token: well past the default context of 2048 tokens.
        var longPrompt = string.Join(' ', Enumerable.Range(0, 9000).Select(i => "word" + (i % 97).ToString(System.Globalization.CultureInfo.InvariantCulture)));
        for (int i = 0; i < 20; i++)
        {
            var (status, body) = await Ask(http, serve, longPrompt);
            Assert.Equal(HttpStatusCode.BadRequest, status);
            Assert.Contains("context of 2048 tokens", body);
        }
        var huge = await Ask(http, serve, new string('a', 900_000));
        Assert.Equal(HttpStatusCode.BadRequest, huge.Status);
        Assert.Contains("characters", huge.Body);
        double after = serve.ResidentMegabytes();
        output.WriteLine($"serve RSS before: {before:F0} MB, after 20 prompts past the context and one of 900 KB: {after:F0} MB");
        Assert.True(after <= 1.5 * before, $"RSS grew from {before:F0} MB to {after:F0} MB");

        Assert.Equal(HttpStatusCode.OK, (await Ask(http, serve, "What is 2 plus 3?")).Status);
    }

    [Fact]
    public async Task Max_prompt_tokens_sets_the_limit_and_bad_values_are_refused()
    {
        CliRunner.Run("serve", "--judge", "keyword", "--max-prompt-tokens", "0").AssertUserError("--max-prompt-tokens");
        using var serve = Serve("--max-prompt-tokens", "24");
        using var http = new HttpClient();
        var (status, body) = await Ask(http, serve, string.Join(' ', Enumerable.Repeat("hello there", 40)));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("context of 24 tokens", body);
        Assert.Equal(HttpStatusCode.OK, (await Ask(http, serve, "Hi")).Status);
    }
}
