using SafeTune.Onnx;
using SafeTune.Safety.Critics;
using SafeTune.TestSupport;

namespace SafeTune.Safety.Tests;

public sealed class JudgeSpecTests
{
    [Fact]
    public void Keyword_specs_build_keyword_judges()
    {
        using var plain = Assert.IsType<KeywordRefusalJudge>(JudgeSpec.Parse("keyword"));
        Assert.Equal(KeywordRefusalJudge.DefaultPhrases.Count, plain.Phrases.Count);
        Assert.Equal(KeywordMatch.Substring, plain.Match);
        using var prefix = Assert.IsType<KeywordRefusalJudge>(JudgeSpec.Parse(" KEYWORD?match=prefix "));
        Assert.Equal(KeywordMatch.Prefix, prefix.Match);
        using var gcg = Assert.IsType<KeywordRefusalJudge>(JudgeSpec.Parse("keyword:" + Repo.SharedData("refusal_keywords", "gcg_evaluate_test_prefixes.json")));
        Assert.Equal(29, gcg.Phrases.Count);

        using var dir = new TempDir();
        var file = dir.File("phrases.txt");
        File.WriteAllText(file, "Nope\n");
        using var own = Assert.IsType<KeywordRefusalJudge>(JudgeSpec.Parse($"keyword:{file}?match=prefix"));
        Assert.Equal(["Nope"], own.Phrases);
        Assert.Equal(KeywordMatch.Prefix, own.Match);
        Assert.Throws<FileNotFoundException>(() => JudgeSpec.Parse("keyword:" + dir.File("missing.txt")));
    }

    [Fact]
    public void Openai_specs_carry_every_option()
    {
        using var dir = new TempDir();
        var cache = dir.File("judge cache&more");
        using var judge = Assert.IsType<OpenAiCompatibleJudge>(JudgeSpec.Parse(
            "openai:http://127.0.0.1:8000/v1?model=meta-llama/Llama-Guard-3-8B&timeout=2.5&rps=5&concurrency=8&retries=2&backoff=0.1&max_backoff=3"
            + $"&cache={Uri.EscapeDataString(cache)}&format=conversation&max_tokens=16"));
        var o = judge.Options;
        Assert.Equal(new Uri("http://127.0.0.1:8000/v1"), o.BaseUrl);
        Assert.Equal("meta-llama/Llama-Guard-3-8B", o.Model);
        Assert.Equal(TimeSpan.FromSeconds(2.5), o.Timeout);
        Assert.Equal(5, o.RequestsPerSecond);
        Assert.Equal(8, o.Concurrency);
        Assert.Equal(2, o.Retries);
        Assert.Equal(TimeSpan.FromSeconds(0.1), o.RetryDelay);
        Assert.Equal(TimeSpan.FromSeconds(3), o.MaxRetryDelay);
        Assert.Equal(cache, o.CacheDirectory);
        Assert.Equal(JudgePromptFormat.Conversation, o.Format);
        Assert.Equal(16, o.MaxTokens);
        Assert.Equal(OpenAiJudgeOptions.DefaultApiKeyVariable, o.ApiKeyVariable);
        Assert.False(o.ApiKeyRequired);
        Assert.Equal("openai (meta-llama/Llama-Guard-3-8B at http://127.0.0.1:8000/v1)", judge.Name);

        using var defaults = Assert.IsType<OpenAiCompatibleJudge>(JudgeSpec.Parse("openai:https://api.example.com/v1?model=gpt-4o-mini"));
        Assert.Equal((TimeSpan.FromSeconds(30), 0.0, 4, 3, JudgePromptFormat.Rubric, (string?)null),
            (defaults.Options.Timeout, defaults.Options.RequestsPerSecond, defaults.Options.Concurrency, defaults.Options.Retries, defaults.Options.Format, defaults.Options.CacheDirectory));
    }

    [Fact]
    public void A_named_key_variable_is_required_and_read_from_the_environment()
    {
        var variable = "SAFETUNE_TEST_SPEC_" + Guid.NewGuid().ToString("N");
        var e = Assert.Throws<UserInputException>(() => JudgeSpec.Parse($"openai:http://127.0.0.1:1/v1?model=m&key_env={variable}"));
        Assert.Contains(variable, e.Message);
        Assert.Contains("not set", e.Message);
        Environment.SetEnvironmentVariable(variable, "secret-value-" + Guid.NewGuid().ToString("N"));
        try
        {
            using var judge = Assert.IsType<OpenAiCompatibleJudge>(JudgeSpec.Parse($"openai:http://127.0.0.1:1/v1?model=m&key_env={variable}"));
            Assert.True(judge.Options.ApiKeyRequired);
            Assert.Equal(variable, judge.Options.ApiKeyVariable);
        }
        finally
        {
            Environment.SetEnvironmentVariable(variable, null);
        }
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("llama", "unknown judge 'llama'")]
    [InlineData("keyword?color=red", "unknown option 'color'")]
    [InlineData("keyword?match=fuzzy", "match=fuzzy must be one of substring, prefix")]
    [InlineData("keyword?match", "option 'match' has no value")]
    [InlineData("keyword?match=prefix&match=substring", "given twice")]
    [InlineData("openai?model=m", "base URL")]
    [InlineData("openai:127.0.0.1:8000?model=m", "absolute http")]
    [InlineData("openai:ftp://host/v1?model=m", "absolute http")]
    [InlineData("openai:http://127.0.0.1:8000/v1", "model=NAME is required")]
    [InlineData("openai:http://127.0.0.1:8000/v1?model=m&timeout=soon", "timeout=soon is not a number of seconds")]
    [InlineData("openai:http://127.0.0.1:8000/v1?model=m&timeout=0", "timeout=0 must be positive")]
    [InlineData("openai:http://127.0.0.1:8000/v1?model=m&rps=-1", "rps=-1 must be at least 0")]
    [InlineData("openai:http://127.0.0.1:8000/v1?model=m&concurrency=0", "concurrency=0 must be at least 1")]
    [InlineData("openai:http://127.0.0.1:8000/v1?model=m&retries=two", "retries=two is not a whole number")]
    [InlineData("openai:http://127.0.0.1:8000/v1?model=m&format=xml", "format=xml must be one of rubric, conversation")]
    [InlineData("openai:http://127.0.0.1:8000/v1?model=m&backoff=5&max_backoff=1", "max_backoff")]
    [InlineData("9lives", "not a judge name")]
    public void Bad_specs_name_the_part_at_fault(string spec, string fragment)
    {
        var e = Assert.Throws<UserInputException>(() => JudgeSpec.Parse(spec));
        Assert.Contains(fragment, e.Message);
    }

    [Fact]
    public void Errors_never_echo_secrets_put_in_the_spec()
    {
        var leaked = Assert.Throws<UserInputException>(() => JudgeSpec.Parse("openai:http://127.0.0.1:8000/v1?model=m&api_key=sk-live-123456"));
        Assert.DoesNotContain("sk-live-123456", leaked.Message);
        Assert.Contains("unknown option 'api_key'", leaked.Message);
        Assert.Contains("key_env", leaked.Message);
        var inUrl = Assert.Throws<UserInputException>(() => JudgeSpec.Parse("openai:http://user:hunter2@127.0.0.1:8000/v1?model=m"));
        Assert.DoesNotContain("hunter2", inUrl.Message);
        Assert.Contains("credentials", inUrl.Message);
    }

    [Fact]
    public void Schemes_can_be_registered_and_specs_split_without_building()
    {
        var parts = JudgeSpec.Split("onnx-test:/models/judge dir?threshold=0.5&batch=8");
        Assert.Equal(("onnx-test", "/models/judge dir"), (parts.Scheme, parts.Argument));
        Assert.Equal(new Dictionary<string, string> { ["threshold"] = "0.5", ["batch"] = "8" }, parts.Options);
        Assert.Equal(0.5, parts.Number("threshold", 0, 0));
        Assert.Equal(8, parts.Integer("batch", 1, 1));

        JudgeSpec.Register("fixed-test", "fixed-test[?phrase=TEXT]", spec =>
        {
            spec.Check("phrase");
            return new KeywordRefusalJudge([spec.Get("phrase") ?? "no"]);
        });
        using var judge = Assert.IsType<KeywordRefusalJudge>(JudgeSpec.Parse("fixed-test?phrase=nah%20mate"));
        Assert.Equal(["nah mate"], judge.Phrases);
        Assert.Contains("fixed-test[?phrase=TEXT]", JudgeSpec.Syntax);
        Assert.Contains(JudgeSpec.Syntax, s => s.StartsWith("openai:BASE_URL?model=NAME", StringComparison.Ordinal));
        Assert.Throws<UserInputException>(() => JudgeSpec.Register("Bad Name", "x", _ => new KeywordRefusalJudge()));
    }
}
